using System.Text.RegularExpressions;
using Pipelines.Containers;

namespace Pipelines.Algorithms;

/// <summary>
/// <c>algorithm://NAME@VERSION</c>, or <c>@stable</c> / <c>@canary</c> for the version a channel
/// names: how a workflow or a function file names a pushed algorithm instead of an image.
/// </summary>
public sealed partial record AlgorithmReference(string Name, string Version)
{
    /// <summary>The scheme, whose one home is <see cref="ImageReference.AlgorithmScheme"/> (the image parser below this part needs it too).</summary>
    public const string Scheme = ImageReference.AlgorithmScheme;

    public const string Stable = "stable";

    public const string Canary = "canary";

    public bool IsChannel => Version is Stable or Canary;

    public override string ToString() => $"{Scheme}{Name}@{Version}";

    public static bool IsAlgorithm(string image) => ImageReference.IsAlgorithm(image);

    /// <summary>Parses a reference, or throws a refusal that says how to write one.</summary>
    public static AlgorithmReference Parse(string image)
    {
        var rest = IsAlgorithm(image) ? image[Scheme.Length..] : image;
        var at = rest.IndexOf('@', StringComparison.Ordinal);
        if (at < 0)
        {
            throw new PipelinesException($"'{image}' names no version: write {Scheme}NAME@VERSION, or @{Stable} / @{Canary}", retryHelps: false);
        }

        var name = rest[..at];
        var version = rest[(at + 1)..];
        CheckName(name);
        if (version is not (Stable or Canary))
        {
            CheckVersion(version);
        }

        return new AlgorithmReference(name, version);
    }

    public static void CheckName(string name)
    {
        if (!NamePattern().IsMatch(name))
        {
            throw new PipelinesException($"'{name}' is not an algorithm name: lower-case letters, digits and '-', starting with a letter or digit, at most 63", retryHelps: false);
        }
    }

    public static void CheckVersion(string version)
    {
        if (!VersionPattern().IsMatch(version) || version is Stable or Canary)
        {
            throw new PipelinesException($"'{version}' is not an algorithm version: letters, digits, '.', '_' and '-', starting with a letter or digit, at most 64, and not '{Stable}' or '{Canary}' (channels)", retryHelps: false);
        }
    }

    [GeneratedRegex("^[a-z0-9][a-z0-9-]{0,62}$")]
    private static partial Regex NamePattern();

    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    private static partial Regex VersionPattern();
}
