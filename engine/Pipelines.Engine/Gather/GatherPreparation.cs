using Pipelines.Telemetry;

namespace Pipelines.Gather;

/// <summary>
/// What a gather makes at its first use in a process, made ahead of it: for a process whose
/// gather is its last step (`pipelines run` in the embedded mode, or with local workers), whose
/// start-up leaves one of the two cores of a small machine idle while the gather at its end runs
/// alone (docs/benchmarks.md, "A run's fixed cost"). Once per process; a later call is the first one's task.
/// </summary>
public static class GatherPreparation
{
    private static readonly Lazy<Task> Prepared = new(() => Task.Run(PrepareAsync));

    /// <summary>Starts the preparation on the thread pool (once per process) and returns at once; the task ends when it is done.</summary>
    public static Task Start() => Prepared.Value;

    private static async Task PrepareAsync()
    {
        using var span = EngineTracing.Start(EngineTracing.GatherPrepare);
        try
        {
            await ProvenanceFile.PrepareAsync(CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception)
        {
            // Nothing is lost: the gather's own first write makes the same serializer, and says
            // what fails there. A preparation only moves work earlier, it never decides anything.
        }
    }
}
