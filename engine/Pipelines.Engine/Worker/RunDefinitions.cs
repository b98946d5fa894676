using System.Collections.Concurrent;
using Pipelines.Runs;
using Pipelines.RunStore;

namespace Pipelines.Worker;

/// <summary>
/// Parsed run definitions, so that the tasks of a run do not parse its JSON again each. One
/// instance per host (a singleton of the engine's services): a long-lived worker sees many
/// runs, so the cache is dropped whole when it grows past a bound.
/// </summary>
internal sealed class RunDefinitions
{
    private const int MaxCached = 256;
    private readonly ConcurrentDictionary<string, RunDefinition> _definitions = new(StringComparer.Ordinal);

    /// <summary>The definition of a run, parsed once while it is cached.</summary>
    public RunDefinition For(RunRecord run)
    {
        if (_definitions.Count >= MaxCached)
        {
            _definitions.Clear();
        }

        return _definitions.GetOrAdd(run.RunId, static (_, json) => RunDefinition.FromJson(json), run.DefinitionJson);
    }
}
