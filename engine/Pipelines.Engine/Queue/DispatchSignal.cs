using Npgsql;

namespace Pipelines.Queue;

/// <summary>
/// Wakes the <see cref="TaskDispatcher"/> when there may be work to release or a slot to fill (a
/// submission, a hand-back, a task's end): at once in this process, and through PostgreSQL's
/// <c>NOTIFY pipelines_dispatch</c> for the dispatcher of another process. A lost signal costs
/// at most one <c>Tenancy:DispatchInterval</c>: the dispatcher looks that often anyway.
/// </summary>
internal sealed class DispatchSignal(NpgsqlDataSource? dataSource)
{
    /// <summary>The channel of the NOTIFY.</summary>
    public const string Channel = "pipelines_dispatch";

    private readonly SemaphoreSlim _wake = new(0, 1);

    /// <summary>Wakes this process's dispatcher (a wake already pending is one wake).</summary>
    public void Pulse()
    {
        // A wake already pending is the usual case while tasks end one after the other: no
        // Release, which would throw; the catch is for two pulses racing past the look.
        if (_wake.CurrentCount > 0)
        {
            return;
        }

        try
        {
            _wake.Release();
        }
        catch (SemaphoreFullException)
        {
            // Already woken: one tick sees everything.
        }
    }

    /// <summary>Wakes the dispatcher of this process and, with PostgreSQL, of every process.</summary>
    public async Task PulseAsync(CancellationToken cancellationToken)
    {
        Pulse();
        if (dataSource is null)
        {
            return;
        }

        try
        {
            await using var cmd = dataSource.CreateCommand($"NOTIFY {Channel}");
            await cmd.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (NpgsqlException)
        {
            // Out of reach for a moment: the dispatcher's next interval finds the work anyway;
            // a wake is no reason to fail a submission or a task.
        }
    }

    /// <summary>Waits for a wake or <paramref name="timeout"/>, whichever comes first.</summary>
    public Task WaitAsync(TimeSpan timeout, CancellationToken cancellationToken) => _wake.WaitAsync(timeout, cancellationToken);
}
