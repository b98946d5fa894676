using Hangfire.PostgreSql;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using Pipelines.Queue;
using Pipelines.Tests.Support;

namespace Pipelines.Tests.Faults;

/// <summary>
/// The queue watchdog against Hangfire.PostgreSql's real schema: which fetched rows it hands
/// back, and that it does so by clearing fetchedat of the same row, never by adding one.
/// </summary>
[Integration]
public sealed class QueueWatchdogTests : IAsyncLifetime
{
    private readonly string _schema = TestEnvironment.NewName("wd_");
    private NpgsqlDataSource _db = null!;

    public async Task InitializeAsync()
    {
        _db = await TestEnvironment.PostgresAsync();
        await using var conn = await _db.OpenConnectionAsync();
        PostgreSqlObjectsInstaller.Install(conn, _schema);
    }

    public async Task DisposeAsync()
    {
        await ExecAsync($"DROP SCHEMA IF EXISTS {_schema} CASCADE");
        await _db.DisposeAsync();
    }

    [Fact]
    public async Task A_job_processing_on_a_dead_or_missing_server_is_handed_back_and_a_live_servers_is_not()
    {
        await ExecAsync($"INSERT INTO {_schema}.server (id, data, lastheartbeat) VALUES ('live:1:a', '{{}}', now()), ('stale:2:b', '{{}}', now() - interval '31 seconds')");
        var onLive = await JobAsync("Processing", "live:1:a");
        var onStale = await JobAsync("Processing", "stale:2:b");
        var onMissing = await JobAsync("Processing", "gone:3:c");
        var watchdog = Watchdog(TimeSpan.FromMinutes(2));

        Assert.Equal(2, await watchdog.ScanAsync(CancellationToken.None));

        Assert.True(await FetchedAsync(onLive));
        Assert.False(await FetchedAsync(onStale));
        Assert.False(await FetchedAsync(onMissing));
        Assert.Equal(2, watchdog.Resets);
        Assert.Equal(3L, await ScalarAsync($"SELECT count(*) FROM {_schema}.jobqueue"));
        Assert.Equal(0, await watchdog.ScanAsync(CancellationToken.None));
    }

    [Fact]
    public async Task A_job_fetched_but_never_started_is_handed_back_after_the_stuck_time_even_while_kept_alive()
    {
        var stuck = await JobAsync("Enqueued", null);
        var starts = await JobAsync("Enqueued", null);
        await ExecAsync($"INSERT INTO {_schema}.server (id, data, lastheartbeat) VALUES ('live:1:a', '{{}}', now())");
        var watchdog = Watchdog(TimeSpan.FromMilliseconds(1));

        // First sight: only remembered.
        Assert.Equal(0, await watchdog.ScanAsync(CancellationToken.None));

        // The keep-alive refreshes fetchedat; one job starts on a live server meanwhile.
        await ExecAsync($"UPDATE {_schema}.jobqueue SET fetchedat = now() WHERE id = {stuck}");
        await SetStateAsync(starts, "Processing", "live:1:a");

        Assert.Equal(1, await watchdog.ScanAsync(CancellationToken.None));
        Assert.False(await FetchedAsync(stuck));
        Assert.True(await FetchedAsync(starts));
    }

    [Fact]
    public async Task A_job_fetched_before_the_database_restarted_and_not_started_since_is_handed_back_after_the_restart_grace()
    {
        // A fetch the restart cut off: the row's update committed before the database stopped,
        // and no worker got it. Another fetched before the start but Processing on a live server,
        // and one fetched since the start, are left alone.
        await ExecAsync($"INSERT INTO {_schema}.server (id, data, lastheartbeat) VALUES ('live:1:a', '{{}}', now())");
        var cut = await JobAsync("Enqueued", null);
        var running = await JobAsync("Processing", "live:1:a");
        var since = await JobAsync("Enqueued", null);
        await ExecAsync($"UPDATE {_schema}.jobqueue SET fetchedat = pg_postmaster_start_time() - interval '1 minute' WHERE id IN ({cut}, {running})");
        var patient = new QueueWatchdog(_db, new QueueWatchdogOptions(_schema, TimeSpan.FromSeconds(30), TimeSpan.FromSeconds(10)) { RestartGrace = TimeSpan.FromDays(365) }, NullLogger<QueueWatchdog>.Instance);
        var watchdog = new QueueWatchdog(_db, new QueueWatchdogOptions(_schema, TimeSpan.FromSeconds(30), TimeSpan.FromSeconds(10)) { RestartGrace = TimeSpan.FromMilliseconds(1) }, NullLogger<QueueWatchdog>.Instance);

        // Within the grace after the start nothing is handed back (a worker that got the row may still start it).
        Assert.Equal(0, await patient.ScanAsync(CancellationToken.None));
        Assert.True(await FetchedAsync(cut));

        Assert.Equal(1, await watchdog.ScanAsync(CancellationToken.None));
        Assert.False(await FetchedAsync(cut));
        Assert.True(await FetchedAsync(running));
        Assert.True(await FetchedAsync(since));
    }

    [Fact]
    public async Task The_row_of_a_job_that_ended_left_fetched_by_a_restart_is_deleted_at_its_second_sight_and_no_sooner()
    {
        // Hangfire commits a job's end, then deletes its queue row: a restart between the two left
        // the row fetched (OutageTests, 2026-12-07). One of each ended state; one whose worker
        // refreshes the row between the scans (a live fetch), and a running job, are left alone.
        await ExecAsync($"INSERT INTO {_schema}.server (id, data, lastheartbeat) VALUES ('live:1:a', '{{}}', now())");
        var succeeded = await JobAsync("Succeeded", null);
        var failed = await JobAsync("Failed", null);
        var deleted = await JobAsync("Deleted", null);
        var refreshed = await JobAsync("Succeeded", null);
        var running = await JobAsync("Processing", "live:1:a");
        var patient = new QueueWatchdog(_db, new QueueWatchdogOptions(_schema, TimeSpan.FromSeconds(30), TimeSpan.FromSeconds(10)) { EndedAfter = TimeSpan.FromDays(365) }, NullLogger<QueueWatchdog>.Instance);
        var watchdog = new QueueWatchdog(_db, new QueueWatchdogOptions(_schema, TimeSpan.FromSeconds(30), TimeSpan.FromSeconds(10)) { EndedAfter = TimeSpan.FromMilliseconds(1) }, NullLogger<QueueWatchdog>.Instance);

        // First sight: only remembered; and a watchdog whose EndedAfter has not passed keeps them.
        Assert.Equal(0, await watchdog.ScanAsync(CancellationToken.None));
        Assert.Equal(0, await patient.ScanAsync(CancellationToken.None));
        Assert.Equal(0, await patient.ScanAsync(CancellationToken.None));
        Assert.Equal(5L, await ScalarAsync($"SELECT count(*) FROM {_schema}.jobqueue"));

        await ExecAsync($"UPDATE {_schema}.jobqueue SET fetchedat = fetchedat + interval '1 second' WHERE id = {refreshed}");
        Assert.Equal(3, await watchdog.ScanAsync(CancellationToken.None));

        Assert.Equal(3, watchdog.Removed);
        Assert.Equal(0, watchdog.Resets);
        Assert.Equal([refreshed, running], await RowsAsync());
        Assert.DoesNotContain(succeeded, await RowsAsync());
        Assert.DoesNotContain(failed, await RowsAsync());
        Assert.DoesNotContain(deleted, await RowsAsync());

        // The refreshed row is now at its first sight under its new fetch time.
        Assert.Equal(1, await watchdog.ScanAsync(CancellationToken.None));
        Assert.Equal([running], await RowsAsync());
    }

    [Fact]
    public async Task Hangfire_locks_taken_before_the_database_restarted_are_deleted_after_the_restart_grace_and_later_ones_kept()
    {
        // A restart between a job's state lock being taken and released left the row: the job's
        // state could not change for Hangfire.PostgreSql's DistributedLockTimeout (10 min) and its
        // run stalled (OutageTests, 2026-12-07). No queue row is fetched here: the rule does not need one.
        await ExecAsync($"""
            INSERT INTO {_schema}.lock (resource, updatecount, acquired) VALUES
                ('job:7:state-lock', 0, pg_postmaster_start_time() - interval '2 seconds'),
                ('{_schema}:lock:recurring-job:r', 0, pg_postmaster_start_time() - interval '1 day'),
                ('job:8:state-lock', 0, now())
            """);
        var patient = new QueueWatchdog(_db, new QueueWatchdogOptions(_schema, TimeSpan.FromSeconds(30), TimeSpan.FromSeconds(10)) { RestartGrace = TimeSpan.FromDays(365) }, NullLogger<QueueWatchdog>.Instance);
        var watchdog = new QueueWatchdog(_db, new QueueWatchdogOptions(_schema, TimeSpan.FromSeconds(30), TimeSpan.FromSeconds(10)) { RestartGrace = TimeSpan.FromMilliseconds(1) }, NullLogger<QueueWatchdog>.Instance);

        // Within the grace after the start a holder may still be releasing: nothing goes.
        Assert.Equal(0, await patient.ScanAsync(CancellationToken.None));
        Assert.Equal(3L, await ScalarAsync($"SELECT count(*) FROM {_schema}.lock"));

        Assert.Equal(2, await watchdog.ScanAsync(CancellationToken.None));
        Assert.Equal("job:8:state-lock", await ScalarAsync($"SELECT string_agg(resource, ',') FROM {_schema}.lock"));
        Assert.Equal(0, await watchdog.ScanAsync(CancellationToken.None));
    }

    [Fact]
    public async Task A_job_fetched_a_moment_ago_is_left_alone()
    {
        var fresh = await JobAsync("Enqueued", null);
        var watchdog = Watchdog(TimeSpan.FromMinutes(2));

        Assert.Equal(0, await watchdog.ScanAsync(CancellationToken.None));
        Assert.Equal(0, await watchdog.ScanAsync(CancellationToken.None));
        Assert.True(await FetchedAsync(fresh));
    }

    private QueueWatchdog Watchdog(TimeSpan stuckAfter) =>
        new(_db, new QueueWatchdogOptions(_schema, TimeSpan.FromSeconds(30), TimeSpan.FromSeconds(10)) { StuckAfter = stuckAfter }, NullLogger<QueueWatchdog>.Instance);

    /// <summary>A job in <paramref name="state"/> with one fetched queue row; returns the row's id.</summary>
    private async Task<long> JobAsync(string state, string? serverId)
    {
        var job = (long)(await ScalarAsync($"INSERT INTO {_schema}.job (invocationdata, arguments, createdat) VALUES ('{{}}', '[]', now()) RETURNING id"))!;
        await SetStateAsync(job, state, serverId, byRow: false);
        return (long)(await ScalarAsync($"INSERT INTO {_schema}.jobqueue (jobid, queue, fetchedat) VALUES ({job}, 'default', now()) RETURNING id"))!;
    }

    private async Task SetStateAsync(long id, string state, string? serverId, bool byRow = true)
    {
        var job = byRow ? (long)(await ScalarAsync($"SELECT jobid FROM {_schema}.jobqueue WHERE id = {id}"))! : id;
        var data = serverId is null ? "{}" : $$"""{"ServerId": "{{serverId}}", "WorkerId": "w"}""";
        var stateId = (long)(await ScalarAsync($"INSERT INTO {_schema}.state (jobid, name, createdat, data) VALUES ({job}, '{state}', now(), '{data}') RETURNING id"))!;
        await ExecAsync($"UPDATE {_schema}.job SET stateid = {stateId}, statename = '{state}' WHERE id = {job}");
    }

    private async Task<List<long>> RowsAsync()
    {
        var rows = new List<long>();
        await using var cmd = _db.CreateCommand($"SELECT id FROM {_schema}.jobqueue ORDER BY id");
        await using var r = await cmd.ExecuteReaderAsync();
        while (await r.ReadAsync())
        {
            rows.Add(r.GetInt64(0));
        }

        return rows;
    }

    private async Task<bool> FetchedAsync(long row) => (bool)(await ScalarAsync($"SELECT fetchedat IS NOT NULL FROM {_schema}.jobqueue WHERE id = {row}"))!;

    private async Task<object?> ScalarAsync(string sql)
    {
        await using var cmd = _db.CreateCommand(sql);
        return await cmd.ExecuteScalarAsync();
    }

    private async Task ExecAsync(string sql)
    {
        await using var cmd = _db.CreateCommand(sql);
        await cmd.ExecuteNonQueryAsync();
    }
}
