using System.Reflection;

namespace Pipelines.Settings;

/// <summary>One setting as <see cref="SettingsBinder.Describe"/> lists it.</summary>
internal sealed record SettingInfo(string Key, string Default, PropertyInfo Property);

/// <summary>A value that must be above zero (a duration, a count).</summary>
[AttributeUsage(AttributeTargets.Property)]
internal sealed class PositiveAttribute : Attribute;

/// <summary>A duration that may be zero but not less.</summary>
[AttributeUsage(AttributeTargets.Property)]
internal sealed class AtLeastZeroAttribute : Attribute;

/// <summary>A value that must be set (it has no default).</summary>
[AttributeUsage(AttributeTargets.Property)]
internal sealed class RequiredSettingAttribute : Attribute;

/// <summary>A number within [min, max].</summary>
[AttributeUsage(AttributeTargets.Property)]
internal sealed class BetweenAttribute(double min, double max) : Attribute
{
    public double Min { get; } = min;

    public double Max { get; } = max;
}

/// <summary>A word out of a list.</summary>
[AttributeUsage(AttributeTargets.Property)]
internal sealed class OneOfAttribute(params string[] values) : Attribute
{
    public IReadOnlyList<string> Values { get; } = values;
}

/// <summary>Text that must match a pattern; <see cref="What"/> says what to write.</summary>
[AttributeUsage(AttributeTargets.Property)]
internal sealed class MatchesAttribute(string pattern, string what) : Attribute
{
    public string Pattern { get; } = pattern;

    public string What { get; } = what;
}

/// <summary>A count of bytes: a size (<c>10Gi</c>) or a number.</summary>
[AttributeUsage(AttributeTargets.Property)]
internal sealed class BytesAttribute : Attribute;

/// <summary>The default as docs/configuration.md writes it, where the value depends on the machine (a temporary folder, the host name).</summary>
[AttributeUsage(AttributeTargets.Property)]
internal sealed class DefaultTextAttribute(string text) : Attribute
{
    public string Text { get; } = text;
}

/// <summary>A property that the engine sets, not the configuration.</summary>
[AttributeUsage(AttributeTargets.Property)]
internal sealed class NotASettingAttribute : Attribute;

/// <summary>An options type that is a section of its parent's (Algorithms:Canary).</summary>
[AttributeUsage(AttributeTargets.Class)]
internal sealed class SettingsSectionAttribute : Attribute;
