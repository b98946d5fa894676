namespace Pipelines;

/// <summary>
/// The one rule of what an outage is (the store, the run store or the Docker engine out of reach):
/// a retry helps, and the algorithm is not to blame. Low in the engine so that every part that
/// waits an outage out (the worker's OutageGate, the queue's dispatcher, the invocation log)
/// reads the same rule.
/// </summary>
internal static class Outage
{
    /// <summary>
    /// Whether <paramref name="e"/> is an outage rather than a failure. A library's wrapper is
    /// looked through to its cause: Hangfire's client throws a BackgroundJobClientException over
    /// a TransactionAbortedException over the NpgsqlException of a PostgreSQL restart, which is an
    /// outage all the same (it stopped the dispatcher, and with it the worker, when only the outer
    /// exception was read). The engine's own exception says for itself whether a retry helps.
    /// </summary>
    public static bool Is(Exception e)
    {
        for (var x = e; x is not null; x = x.InnerException)
        {
            switch (x)
            {
                case PipelinesException p:
                    return p.RetryHelps;
                case Npgsql.NpgsqlException n:
                    return n.IsTransient;
                case TimeoutException or OperationCanceledException:
                    return true;
            }
        }

        return false;
    }
}
