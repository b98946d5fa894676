using System.Text.RegularExpressions;

namespace Pipelines.Functions;

/// <summary>
/// One request's input, staged in a local folder: the files a fork-mode command finds at
/// /in/&lt;name&gt;, or the one body an http-mode server receives with its content type.
/// <see cref="Sha256"/> and <see cref="Bytes"/> are of the request body as it arrived.
/// </summary>
public sealed record FunctionInput(string Folder, IReadOnlyList<InputPart> Files, string? ContentType, string Sha256, long Bytes);

/// <summary>
/// One input file: its name under /in and where it is staged, or, for a small body of a
/// synchronous request, its bytes in <see cref="Content"/> and nothing at <see cref="Path"/>:
/// the request writes them straight into its container's /in (fork) or sends them (http), with no
/// file of the server's made, moved and removed on the way (docs/benchmarks.md).
/// </summary>
public sealed record InputPart(string Name, string Path, long Size)
{
    /// <summary>The file's bytes when they are held in memory (at most FunctionInvoker.SmallFile); null when it is staged at <see cref="Path"/>.</summary>
    public byte[]? Content { get; init; }
}

/// <summary>What an input file may be called: one plain name, as it appears under /in.</summary>
public static partial class InputNames
{
    /// <summary>The name a body without one gets.</summary>
    public const string Default = "input";

    /// <summary>Why <paramref name="name"/> cannot name an input file, or null.</summary>
    public static string? Problem(string name) =>
        name.Length == 0 ? "is empty"
        : name is "." or ".." ? $"'{name}' is not a file name"
        : name.Length > 255 ? "is longer than 255 characters"
        : !Pattern().IsMatch(name) ? $"{Storage.KeyNames.Escape(name)} is not a plain file name: use letters, digits, '.', '_' and '-', no '/'"
        : null;

    [GeneratedRegex("^[A-Za-z0-9._-]+$")]
    private static partial Regex Pattern();
}
