using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace Pipelines.Queue;

/// <summary>
/// The safety net for Hangfire.PostgreSql's queue: hands back to the queue the jobs that are
/// fetched but that no live worker runs, long before the invisibility timeout would.
/// </summary>
/// <remarks>
/// Every scan (one process at a time, under an advisory lock) looks at fetched rows of
/// <c>jobqueue</c> with their job's state, and clears <c>fetchedat</c> of:
/// <list type="bullet">
/// <item>(A) a job Processing on a server that has sent no heartbeat for longer than the server
/// timeout, or that is gone from the server table: its worker died (SIGKILL, a lost host);</item>
/// <item>(B) a job fetched but still Enqueued or Scheduled for longer than
/// <see cref="QueueWatchdogOptions.StuckAfter"/> (2 min): fetched and never started. The keep-alive refreshes fetchedat, so
/// such rows are remembered by id across scans.</item>
/// <item>(C) sooner, a job still Enqueued or Scheduled whose row was fetched before the database
/// last started, once <see cref="QueueWatchdogOptions.RestartGrace"/> (30 s) has passed since that
/// start: a fetch cut off by the restart (the update committed, its answer never reached the
/// worker) is held by no one, while a worker that did get the row has since had the grace to
/// start the job or refresh the row.</item>
/// </list>
/// and deletes (D) the fetched row of a job that has ended (Succeeded, Failed or Deleted) when it is
/// still there, fetched at the same moment, <see cref="QueueWatchdogOptions.EndedAfter"/> (5 s) after
/// it was first seen: Hangfire commits a job's end and then removes its queue row in a second
/// statement, so a restart between the two left a row no one runs, invisible until the
/// invisibility timeout (5 min) and then delivered once more for nothing.
/// It also deletes (E) Hangfire's distributed locks (its <c>lock</c> table: a job's state lock,
/// a scheduler's) taken before the database last started, once
/// <see cref="QueueWatchdogOptions.RestartGrace"/> has passed since that start: the restart cut
/// the connection of every holder, so a lock whose release the restart cut is held by no one, yet
/// Hangfire.PostgreSql frees it only after its DistributedLockTimeout (10 min). Until then the
/// job's state could not change: it stayed fetched and Enqueued, or Processing and kept alive,
/// and its run stalled (OutageTests, 2026-12-07). The lock's time is its taker's clock: a taker more
/// than the grace behind the database's is a clock to fix, not a case this rule guards.
/// The reset is the invisibility timeout, only earlier: a guarded update of the same row (no
/// second queue row), which fails if anyone touched the row since it was read. A delivery it
/// causes for a task that still runs is harmless: the task's lease (IRunStore.ClaimTaskAsync)
/// keeps it from running twice.
/// </remarks>
internal sealed partial class QueueWatchdog(
    NpgsqlDataSource dataSource,
    QueueWatchdogOptions options,
    ILogger<QueueWatchdog> log) : BackgroundService
{
    /// <summary>
    /// The advisory lock of a scan, with the schema's hash as its second key: one process acts
    /// per Hangfire schema (the run store's schema lock is 7310021).
    /// </summary>
    private const int ScanLock = 7310022;

    // Row id → (when it was first seen fetched and not started, its job's state then).
    private readonly Dictionary<long, (DateTime Since, string State)> _notStarted = [];

    // Row id → (when it was first seen fetched with its job ended, its fetchedat then).
    private readonly Dictionary<long, (DateTime Since, DateTime FetchedAt)> _ended = [];
    private long _resets;

    private long _removed;

    /// <summary>Queue rows this process has handed back so far.</summary>
    public long Resets => Interlocked.Read(ref _resets);

    /// <summary>Queue rows of ended jobs (rule D) and locks held by no one (rule E) this process has deleted so far.</summary>
    public long Removed => Interlocked.Read(ref _removed);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await ScanAsync(stoppingToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e) when (e is NpgsqlException or TimeoutException or InvalidOperationException && !stoppingToken.IsCancellationRequested)
            {
                // The database is out of reach for a moment: the next scan tries again.
                LogScanFailed(log, e.Message);
            }

            try
            {
                await Task.Delay(options.Interval, stoppingToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    /// <summary>One scan; returns the queue rows it handed back or deleted and the locks it deleted (or -1 when another process holds the scan).</summary>
    public async Task<int> ScanAsync(CancellationToken cancellationToken)
    {
        var s = options.Schema;
        await using var conn = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var tx = await conn.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        await using (var lockCmd = new NpgsqlCommand($"SELECT pg_try_advisory_xact_lock({ScanLock}, hashtext(@schema))", conn, tx))
        {
            lockCmd.Parameters.AddWithValue("schema", s);
            if (await lockCmd.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) is not true)
            {
                return -1;
            }
        }

        var rows = new List<FetchedRow>();
        DateTime now;
        DateTime started = DateTime.MinValue;
        await using (var cmd = new NpgsqlCommand($"""
            SELECT q.id, q.jobid, q.fetchedat, j.statename,
                   j.statename = 'Processing' AND NOT EXISTS (
                       SELECT 1 FROM {s}.server sv
                       WHERE sv.id = st.data->>'ServerId' AND sv.lastheartbeat > now() - @timeout),
                   now(), pg_postmaster_start_time()
            FROM {s}.jobqueue q
            JOIN {s}.job j ON j.id = q.jobid
            LEFT JOIN {s}.state st ON st.id = j.stateid
            WHERE q.fetchedat IS NOT NULL
            """, conn, tx))
        {
            cmd.Parameters.AddWithValue("timeout", options.ServerTimeout);
            now = DateTime.UtcNow;
            await using var r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            while (await r.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                rows.Add(new FetchedRow(r.GetInt64(0), r.GetInt64(1), r.GetDateTime(2), r.IsDBNull(3) ? null : r.GetString(3), !r.IsDBNull(4) && r.GetBoolean(4)));
                now = r.GetDateTime(5);
                started = r.GetDateTime(6);
            }
        }

        var resets = 0;
        var removed = 0;
        var seen = new HashSet<long>();
        foreach (var row in rows)
        {
            seen.Add(row.Id);
            if (row.State is "Succeeded" or "Failed" or "Deleted")
            {
                if (!_ended.TryGetValue(row.Id, out var first) || first.FetchedAt != row.FetchedAt)
                {
                    _ended[row.Id] = (now, row.FetchedAt);
                    continue;
                }

                if (now - first.Since < options.EndedAfter)
                {
                    continue;
                }

                // Guarded as the reset is: a row fetched again since (a job requeued by hand) is left.
                if (await OnRowAsReadAsync($"DELETE FROM {s}.jobqueue", row, conn, tx, cancellationToken).ConfigureAwait(false))
                {
                    removed++;
                    LogRemoved(log, row.JobId.ToString(System.Globalization.CultureInfo.InvariantCulture), row.Id, row.State);
                }

                _ended.Remove(row.Id);
                continue;
            }

            string? reason = null;
            if (row.ServerDead)
            {
                reason = $"it is Processing on a server that has sent no heartbeat for {options.ServerTimeout.TotalSeconds:0} s";
            }
            else if (row.State is "Enqueued" or "Scheduled" && row.FetchedAt < started && now - started >= options.RestartGrace)
            {
                reason = $"it was fetched before the database restarted and is still {row.State} {(now - started).TotalSeconds:0} s after";
            }
            else if (row.State is "Enqueued" or "Scheduled")
            {
                if (!_notStarted.TryGetValue(row.Id, out var since) || since.State != row.State)
                {
                    _notStarted[row.Id] = (now, row.State);
                }
                else if (now - since.Since >= options.StuckAfter)
                {
                    reason = $"it was fetched but is still {row.State} after {(now - since.Since).TotalSeconds:0} s";
                }
            }
            else
            {
                _notStarted.Remove(row.Id);
            }

            if (reason is null)
            {
                continue;
            }

            if (await OnRowAsReadAsync($"UPDATE {s}.jobqueue SET fetchedat = NULL", row, conn, tx, cancellationToken).ConfigureAwait(false))
            {
                resets++;
                _notStarted.Remove(row.Id);
                LogReset(log, row.JobId.ToString(System.Globalization.CultureInfo.InvariantCulture), row.Id, reason);
            }
        }

        // The database's own clock on both sides, whether or not any row is fetched.
        await using (var locks = new NpgsqlCommand($"""
            DELETE FROM {s}.lock
            WHERE acquired < pg_postmaster_start_time() AND now() - pg_postmaster_start_time() >= @grace
            RETURNING resource, acquired
            """, conn, tx))
        {
            locks.Parameters.AddWithValue("grace", options.RestartGrace);
            await using var r = await locks.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            while (await r.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                removed++;
                LogLockRemoved(log, r.GetString(0), r.GetDateTime(1));
            }
        }

        ForgetUnseen(_notStarted, seen);
        ForgetUnseen(_ended, seen);

        await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
        Interlocked.Add(ref _resets, resets);
        Interlocked.Add(ref _removed, removed);
        return resets + removed;
    }

    /// <summary>
    /// Runs <paramref name="statement"/> (an UPDATE or DELETE of jobqueue, without its WHERE) on
    /// <paramref name="row"/> only as this scan read it: a worker that fetched or refreshed the row
    /// since wins. True when it was changed.
    /// </summary>
    private static async Task<bool> OnRowAsReadAsync(string statement, FetchedRow row, NpgsqlConnection conn, NpgsqlTransaction tx, CancellationToken cancellationToken)
    {
        await using var cmd = new NpgsqlCommand(statement + " WHERE id = @id AND fetchedat = @seen", conn, tx);
        cmd.Parameters.AddWithValue("id", row.Id);
        cmd.Parameters.AddWithValue("seen", row.FetchedAt);
        return await cmd.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) == 1;
    }

    /// <summary>A fetched queue row as a scan read it, with its job's state and whether it runs on a dead server.</summary>
    private readonly record struct FetchedRow(long Id, long JobId, DateTime FetchedAt, string? State, bool ServerDead);

    /// <summary>Forgets the rows remembered across scans that this scan no longer saw fetched.</summary>
    private static void ForgetUnseen<T>(Dictionary<long, T> remembered, HashSet<long> seen)
    {
        foreach (var gone in remembered.Keys.Where(id => !seen.Contains(id)).ToList())
        {
            remembered.Remove(gone);
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "queue watchdog: job {JobId} (queue row {RowId}) handed back to the queue: {Reason}")]
    private static partial void LogReset(ILogger logger, string jobId, long rowId, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "queue watchdog: job {JobId} ended {State} but its queue row {RowId} was left fetched (a restart between the end and the row's removal): deleted")]
    private static partial void LogRemoved(ILogger logger, string jobId, long rowId, string state);

    [LoggerMessage(Level = LogLevel.Warning, Message = "queue watchdog: Hangfire's lock {Resource}, taken at {Acquired:O} before the database restarted, was held by no one (the restart cut its holder's connection): deleted")]
    private static partial void LogLockRemoved(ILogger logger, string resource, DateTime acquired);

    [LoggerMessage(Level = LogLevel.Warning, Message = "queue watchdog: scan failed, trying again later: {Error}")]
    private static partial void LogScanFailed(ILogger logger, string error);
}

/// <summary>What the <see cref="QueueWatchdog"/> needs: Hangfire's schema and server timeout, and how often to scan.</summary>
internal sealed record QueueWatchdogOptions(string Schema, TimeSpan ServerTimeout, TimeSpan Interval)
{
    /// <summary>
    /// A fetched job that has not reached Processing after this long was fetched and lost; the
    /// slowest legitimate path (Hangfire's state-change retries) takes about a minute.
    /// </summary>
    public TimeSpan StuckAfter { get; init; } = TimeSpan.FromMinutes(2);

    /// <summary>
    /// A job fetched before the database last started and not Processing this long after the
    /// start was fetched by a connection the restart cut: rule (C).
    /// </summary>
    public TimeSpan RestartGrace { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// A job that has ended whose queue row is still fetched, unchanged, this long after it was first
    /// seen lost the row's removal: rule (D). Hangfire removes it a moment after the end commits.
    /// </summary>
    public TimeSpan EndedAfter { get; init; } = TimeSpan.FromSeconds(5);
}
