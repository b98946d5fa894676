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
    private readonly StorageLocation _input;

    /// <summary>The output location relative to the input, when it is inside it (or is it): "" or "results/".</summary>
    private readonly string? _outputInside;

    public InputScope(StorageLocation input, StorageLocation output)
    {
        _input = input;
        OutputUri = output.Uri;
        if (input.Store.GetType() == output.Store.GetType() && output.Uri.StartsWith(input.Uri, StringComparison.Ordinal))
        {
            _outputInside = output.Uri[input.Uri.Length..];
        }
    }

    /// <summary>The output location, for the note that says what was left out.</summary>
    public string OutputUri { get; }

    /// <summary>How many listed files were left out as the engine's own outputs.</summary>
    public int LeftOut { get; private set; }

    /// <summary>Whether the key (relative to the input) is input; throws when it is one the engine refuses.</summary>
    public bool Admit(string relativeKey)
    {
        if (_outputInside is not null && relativeKey.StartsWith(_outputInside, StringComparison.Ordinal)
            && EngineOwned().IsMatch(relativeKey.AsSpan(_outputInside.Length)))
        {
            LeftOut++;
            return false;
        }

        if (KeyNames.Problem(relativeKey) is { } problem)
        {
            throw new PipelinesException(
                $"input {KeyNames.Escape(relativeKey)} under {_input.Uri} {problem}: rename it (names like this are refused, never skipped)",
                retryHelps: false);
        }

        return true;
    }

    /// <summary>The note for the run's start output, or null when nothing was left out.</summary>
    public string? Note => LeftOut == 0 ? null : $"{LeftOut} file(s) under the output location {OutputUri} (earlier runs' results) were left out of the input";

    /// <summary>A run's folder (20261126-053012-7f3a9c/) or the reuse cache, as the engine writes them.</summary>
    [GeneratedRegex(@"\A(?:[0-9]{8}-[0-9]{6}-[0-9a-f]{6}|\.cache)/")]
    private static partial Regex EngineOwned();
}
