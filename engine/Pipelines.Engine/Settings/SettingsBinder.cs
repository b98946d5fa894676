using System.Globalization;
using System.Reflection;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Configuration;
using Pipelines.Model;

namespace Pipelines.Settings;

/// <summary>
/// The one binder of the engine's settings: every options type is read from its configuration
/// section here, once, when a host is wired (before it starts), with one rule per kind of value
/// and one form of error, <c>Section:Key: 'value' is not ...</c>, that stops the process. The
/// default of a setting is its property's initial value and nothing else, so a setting has one
/// default; docs/configuration.md is checked against <see cref="Describe"/> by a test.
/// </summary>
/// <remarks>
/// Durations are written as in a workflow (<c>5s</c>, <c>2m</c>, <c>1h30m</c>, <c>30d</c>:
/// <see cref="Quantities"/>); .NET's <c>00:00:05</c> is read too, since older configuration
/// files hold it. Byte counts marked <see cref="BytesAttribute"/> take a size (<c>10Gi</c>,
/// <c>256Mi</c>) or a plain number. Microsoft's ConfigurationBinder is not used for these types:
/// it reads only <c>00:00:05</c>, and its errors name the CLR type rather than what to write.
/// </remarks>
public static class SettingsBinder
{
    /// <summary>Reads <typeparamref name="T"/> from <paramref name="section"/> ("" for the root), refusing any value it cannot use.</summary>
    public static T Bind<T>(IConfiguration config, string section)
        where T : new() => (T)Bind(typeof(T), config, section);

    /// <summary>A list setting (<c>Key:0</c>, <c>Key:1</c>, ...), each item read by <paramref name="parse"/> (null: refused, saying <paramref name="wanted"/>).</summary>
    public static IReadOnlyList<T> BindList<T>(IConfiguration config, string key, string wanted, Func<string, T?> parse)
        where T : struct => config.GetSection(key).GetChildren()
            .Where(c => !string.IsNullOrWhiteSpace(c.Value))
            .OrderBy(c => int.TryParse(c.Key, NumberStyles.None, CultureInfo.InvariantCulture, out var i) ? i : int.MaxValue)
            .Select(c => parse(c.Value!.Trim()) ?? throw Refused(c.Path, c.Value!, wanted))
            .ToList();

    /// <summary>One duration as every setting takes it: <c>5s</c> (the documented form) or <c>00:00:05</c>.</summary>
    public static bool TryParseDuration(string text, out TimeSpan duration) =>
        Quantities.TryParseDuration(text, out duration)
        || TimeSpan.TryParse(text.Trim(), CultureInfo.InvariantCulture, out duration);

    /// <summary>A duration in the documented form: <c>5s</c>, <c>10m</c>, <c>1h30m</c>, <c>30d</c>.</summary>
    public static string FormatDuration(TimeSpan d)
    {
        if (d == TimeSpan.Zero)
        {
            return "0s";
        }

        if (d.Milliseconds != 0 || d.Ticks % TimeSpan.TicksPerMillisecond != 0)
        {
            return d.TotalMilliseconds.ToString("0.###", CultureInfo.InvariantCulture) + "ms";
        }

        var text = (d.Days > 0 ? $"{d.Days}d" : "") + (d.Hours > 0 ? $"{d.Hours}h" : "") + (d.Minutes > 0 ? $"{d.Minutes}m" : "") + (d.Seconds > 0 ? $"{d.Seconds}s" : "");
        return text;
    }

    /// <summary>Every setting of <paramref name="type"/> under <paramref name="section"/>: its key, its default as the docs write it, its kind.</summary>
    internal static IEnumerable<SettingInfo> Describe(Type type, string section)
    {
        var defaults = Activator.CreateInstance(type)!;
        foreach (var p in ListedProperties(type))
        {
            var key = Key(section, p.Name);
            if (IsSection(p.PropertyType))
            {
                foreach (var inner in Describe(p.PropertyType, key))
                {
                    yield return inner;
                }

                continue;
            }

            var shown = p.GetCustomAttribute<DefaultTextAttribute>()?.Text ?? Format(p, p.GetValue(defaults));
            yield return new SettingInfo(key, shown, p);
        }
    }

    private static object Bind(Type type, IConfiguration config, string section)
    {
        var options = Activator.CreateInstance(type)!;
        foreach (var p in SettableProperties(type))
        {
            var key = Key(section, p.Name);
            if (IsSection(p.PropertyType))
            {
                p.SetValue(options, Bind(p.PropertyType, config, key));
                continue;
            }

            var text = config[key];
            if (string.IsNullOrWhiteSpace(text))
            {
                Check(p, key, p.GetValue(options), text);
                continue;
            }

            var value = Parse(p, key, text.Trim());
            Check(p, key, value, text);
            p.SetValue(options, value);
        }

        return options;
    }

    private static object? Parse(PropertyInfo p, string key, string text)
    {
        var type = Nullable.GetUnderlyingType(p.PropertyType) ?? p.PropertyType;
        if (type == typeof(string))
        {
            return text;
        }

        if (type == typeof(TimeSpan))
        {
            return TryParseDuration(text, out var d) ? d : throw Refused(key, text, "a duration (e.g. 5s, 2m, 1h30m)");
        }

        if (type == typeof(bool))
        {
            return bool.TryParse(text, out var b) ? b : throw Refused(key, text, "true or false");
        }

        if (type == typeof(long) && p.GetCustomAttribute<BytesAttribute>() is not null)
        {
            return long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var n) || Quantities.TryParseSize(text, out n)
                ? n
                : throw Refused(key, text, "a size (e.g. 256Mi, 10Gi) or a number of bytes");
        }

        if (type == typeof(int))
        {
            return int.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var n) ? n : throw Refused(key, text, "a whole number");
        }

        if (type == typeof(long))
        {
            return long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var n) ? n : throw Refused(key, text, "a whole number");
        }

        if (type == typeof(double))
        {
            return double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var n) && double.IsFinite(n) ? n : throw Refused(key, text, "a number (e.g. 0.5)");
        }

        throw new InvalidOperationException($"{key}: settings of type {type.Name} have no reader");
    }

    private static void Check(PropertyInfo p, string key, object? value, string? text)
    {
        var shown = string.IsNullOrWhiteSpace(text) ? "unset" : $"'{text.Trim()}'";
        if (p.GetCustomAttribute<RequiredSettingAttribute>() is not null && value is null or "")
        {
            throw new PipelinesException($"{key} is {shown}: it must be set", retryHelps: false);
        }

        if (p.GetCustomAttribute<OneOfAttribute>() is { } oneOf && value is string s && !oneOf.Values.Contains(s, StringComparer.OrdinalIgnoreCase))
        {
            throw Refused(key, s, "one of " + string.Join(", ", oneOf.Values));
        }

        if (p.GetCustomAttribute<MatchesAttribute>() is { } matches && value is string m && !Regex.IsMatch(m, matches.Pattern, RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1)))
        {
            throw Refused(key, m, matches.What);
        }

        if (p.GetCustomAttribute<PositiveAttribute>() is not null && value is not null && !IsPositive(value))
        {
            throw Refused(key, text ?? Format(p, value), "above zero");
        }

        if (p.GetCustomAttribute<AtLeastZeroAttribute>() is not null && (value is TimeSpan span ? span < TimeSpan.Zero : value is (int and < 0) or (long and < 0) or (double and < 0)))
        {
            throw Refused(key, text ?? Format(p, value), "zero or more");
        }

        if (p.GetCustomAttribute<BetweenAttribute>() is { } between && value is not null)
        {
            var n = Convert.ToDouble(value, CultureInfo.InvariantCulture);
            if (n < between.Min || n > between.Max)
            {
                var min = between.Min.ToString(CultureInfo.InvariantCulture);
                throw Refused(key, text ?? Format(p, value), between.Max == double.MaxValue ? $"at least {min}" : $"between {min} and {between.Max.ToString(CultureInfo.InvariantCulture)}");
            }
        }
    }

    private static bool IsPositive(object value) => value switch
    {
        TimeSpan t => t > TimeSpan.Zero,
        int i => i > 0,
        long l => l > 0,
        double d => d > 0,
        _ => true,
    };

    private static PipelinesException Refused(string key, string text, string wanted) =>
        new($"{key}: '{text.Trim()}' is not {wanted}", retryHelps: false);

    private static string Format(PropertyInfo p, object? value) => value switch
    {
        null => "none",
        TimeSpan t => FormatDuration(t),
        bool b => b ? "true" : "false",
        long l when p.GetCustomAttribute<BytesAttribute>() is not null => Quantities.FormatSize(l),
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString() ?? "none",
    };

    private static string Key(string section, string name) => section.Length == 0 ? name : section + ":" + name;

    // A nested options type is a section of its own (Algorithms:Canary); collections are read by their owners.
    private static bool IsSection(Type t) => t.IsClass && t != typeof(string) && t.GetCustomAttribute<SettingsSectionAttribute>() is not null;

    private static IEnumerable<PropertyInfo> SettableProperties(Type type) => type
        .GetProperties(BindingFlags.Public | BindingFlags.Instance)
        .Where(p => p.SetMethod is { IsPublic: true } && p.GetCustomAttribute<NotASettingAttribute>() is null)
        .Where(p => IsSection(p.PropertyType) || IsScalar(Nullable.GetUnderlyingType(p.PropertyType) ?? p.PropertyType));

    // Lists and maps are read by their owners (BindList); the docs still list those that carry a DefaultText.
    private static IEnumerable<PropertyInfo> ListedProperties(Type type) => type
        .GetProperties(BindingFlags.Public | BindingFlags.Instance)
        .Where(p => p.SetMethod is { IsPublic: true } && p.GetCustomAttribute<NotASettingAttribute>() is null)
        .Where(p => IsSection(p.PropertyType) || IsScalar(Nullable.GetUnderlyingType(p.PropertyType) ?? p.PropertyType) || p.GetCustomAttribute<DefaultTextAttribute>() is not null);

    private static bool IsScalar(Type t) => t == typeof(string) || t == typeof(TimeSpan) || t == typeof(bool) || t == typeof(int) || t == typeof(long) || t == typeof(double);
}
