using System.Text.RegularExpressions;
using Pipelines.Storage;

namespace Pipelines.Runs;

/// <summary>
/// Which listed keys are a run's input. What the engine wrote under an <c>output.uri</c> that
/// lies inside <c>input.uri</c> (run folders and the reuse cache) is left out and counted, so a
/// second run does not take the first run's outputs for inputs; a key the engine cannot carry
/// is refused (<see cref="KeyNames"/>). Nothing is dropped without being counted or refused.
/// </summary>
public sealed partial class InputScope
{
    private readonly string _inputUri;

    /// <summary>The output location relative to the input, when it is inside it (or is it): "" or "results/".</summary>
    private readonly string? _outputInside;

    public InputScope(StorageLocation input, StorageLocation output)
        : this(input.Uri, output.Uri)
    {
    }

    /// <summary>A scope from the two URIs (s3://bucket/prefix/ or an absolute folder), as the triggers know them.</summary>
    public InputScope(string inputUri, string outputUri)
    {
        _inputUri = Folder(inputUri);
        OutputUri = Folder(outputUri);
        if (OutputUri.StartsWith(_inputUri, StringComparison.Ordinal))
        {
            _outputInside = OutputUri[_inputUri.Length..];
        }
    }

    /// <summary>The output location, for the note that says what was left out.</summary>
    public string OutputUri { get; }

    /// <summary>How many listed files were left out as the engine's own outputs.</summary>
    public int LeftOut { get; private set; }

    /// <summary>Whether the key (relative to the input) is input; throws when it is one the engine refuses.</summary>
    public bool Admit(string relativeKey)
    {
        if (IsEngineOutput(relativeKey))
        {
            LeftOut++;
            return false;
        }

        if (KeyNames.Problem(relativeKey) is { } problem)
        {
            throw new PipelinesException(
                $"input {KeyNames.Escape(relativeKey)} under {_inputUri} {problem}: rename it (names like this are refused, never skipped)",
                retryHelps: false);
        }

        return true;
    }

    /// <summary>Whether the key (relative to the input) is in a run folder or the cache that the engine wrote under the output location.</summary>
    public bool IsEngineOutput(string relativeKey) =>
        _outputInside is not null && relativeKey.StartsWith(_outputInside, StringComparison.Ordinal)
        && EngineOwned().IsMatch(relativeKey.AsSpan(_outputInside.Length));

    /// <summary>The note for the run's start output, or null when nothing was left out.</summary>
    public string? Note => LeftOut == 0 ? null : $"{LeftOut} file(s) under the output location {OutputUri} (earlier runs' results) were left out of the input";

    private static string Folder(string uri) =>
        (uri.StartsWith("file://", StringComparison.Ordinal) ? uri["file://".Length..] : uri).TrimEnd('/') + "/";

    /// <summary>A run's folder (20261126-053012-7f3a9c/) or the reuse cache, as the engine writes them.</summary>
    [GeneratedRegex(@"\A(?:[0-9]{8}-[0-9]{6}-[0-9a-f]{6}|\.cache)/")]
    private static partial Regex EngineOwned();
}
