using System.Diagnostics;
using System.Net;
using Npgsql;
using Pipelines.Tests.Server;
using Pipelines.Tests.Support;
using Xunit.Abstractions;

namespace Pipelines.Tests.Faults;

/// <summary>
/// Cancel in the same breath as submit, many times over, against a `pipelines server` process:
/// the moment that used to leave a Hangfire job fetched and never run (long polling's lost
/// cancel), and so a run that never ended.
/// </summary>
[Collection(ServerCollection.Name)]
[Integration]
public sealed class CancelRightAfterSubmitTests(ServerFixture fixture, ITestOutputHelper output)
{
    private const int Rounds = 20;

    [Fact]
    public async Task A_run_cancelled_right_after_submit_ends_cancelled_within_seconds_twenty_times_and_leaves_no_job_fetched()
    {
        // Five one-file tasks whose step is short: some end before the cancel, some are stopped, most never start.
        var yaml = $$"""
            version: 1
            name: cancel-at-once
            input:
              uri: s3://{{fixture.Bucket}}/raw/
              include: ["lane1/S00[1-5]_R1.fastq"]
              batch: 1
            steps:
              - name: nap
                image: pipelines-samples/pair-check:1
                command: ["busybox", "sleep", "1"]
                resources: { cpus: 0.1, memory: 32Mi, timeout: 1m }
                outputs: ["*.tsv"]
            output:
              uri: s3://{{fixture.Bucket}}/cancel-at-once/
            """;
        using var http = fixture.Server.Client();

        // The server is shared with other classes: this test looks at its own runs' jobs and at what it logged.
        var logFrom = fixture.Server.Output.Length;
        var runIds = new List<string>();
        var slowest = TimeSpan.Zero;
        for (var round = 0; round < Rounds; round++)
        {
            var runId = await ServerFixture.SubmitAsync(http, yaml);
            runIds.Add(runId);
            var clock = Stopwatch.StartNew();
            using (var cancel = await http.PostAsync($"/api/runs/{runId}/cancel", null))
            {
                Assert.Equal(HttpStatusCode.Accepted, cancel.StatusCode);
            }

            var run = await ServerFixture.WaitForAsync(http, runId, r => r.GetProperty("state").GetString() is "cancelled" or "succeeded" or "failed", TimeSpan.FromSeconds(30));
            Assert.Equal("cancelled", run.GetProperty("state").GetString());
            var counts = run.GetProperty("counts");
            Assert.Equal(5, counts.GetProperty("total").GetInt32());
            Assert.Equal(0, counts.GetProperty("queued").GetInt32() + counts.GetProperty("running").GetInt32());
            slowest = clock.Elapsed > slowest ? clock.Elapsed : slowest;
        }

        output.WriteLine($"{Rounds} runs cancelled right after submit; the slowest ended {slowest.TotalSeconds:0.0} s after its cancel");
        Assert.True(slowest < TimeSpan.FromSeconds(15), $"a run took {slowest.TotalSeconds:0.0} s to end after its cancel");

        // Every job of these runs was run and acknowledged: no queue row stays fetched (nor queued).
        // A job's first argument is its run id, as Hangfire keeps it: a JSON string, quotes and all;
        // that this finds the runs' jobs at all is checked too.
        await using var db = NpgsqlDataSource.Create(TestEnvironment.Postgres);
        var schema = fixture.Env["PIPELINES_Hangfire__Schema"];
        await using var cmd = db.CreateCommand(
            $"SELECT count(*) FILTER (WHERE q.fetchedat IS NOT NULL), count(q.id), count(*) FROM {schema}.job j LEFT JOIN {schema}.jobqueue q ON q.jobid = j.id WHERE j.arguments->>0 = ANY($1)");
        cmd.Parameters.AddWithValue(runIds.Select(id => $"\"{id}\"").ToArray());
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            await using var r = await cmd.ExecuteReaderAsync();
            await r.ReadAsync();
            var (fetched, all, jobs) = (r.GetInt64(0), r.GetInt64(1), r.GetInt64(2));
            Assert.True(jobs >= Rounds, $"the runs' jobs are not found: {jobs} for {Rounds} runs");
            if (all == 0)
            {
                break;
            }

            Assert.True(deadline.Elapsed < TimeSpan.FromSeconds(10), $"{fetched} queue rows stay fetched, {all} in all");
            await Task.Delay(200);
        }

        Assert.DoesNotContain("handed back to the queue", fixture.Server.Output[logFrom..], StringComparison.Ordinal);
    }
}
