namespace Pipelines;

/// <summary>
/// The one rule of what an outage is (the store, the run store or the Docker engine out of reach):
/// a retry helps, and the algorithm is not to blame. Low in the engine so that every part that
/// waits an outage out (the worker's OutageGate, the queue's dispatcher) reads the same rule.
/// </summary>
internal static class Outage
{
    /// <summary>Whether <paramref name="e"/> is an outage rather than a failure.</summary>
    public static bool Is(Exception e) =>
        e is PipelinesException { RetryHelps: true } or Npgsql.NpgsqlException { IsTransient: true } or TimeoutException or OperationCanceledException;
}
