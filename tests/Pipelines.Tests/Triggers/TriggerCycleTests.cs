using System.Collections.Concurrent;
using System.Text;
using Hangfire;
using Hangfire.InMemory;
using Hangfire.Storage;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Npgsql;
using Pipelines.Hosting;
using Pipelines.RunStore;
using Pipelines.Storage;
using Pipelines.Tests.Support;
using Pipelines.Triggers;

namespace Pipelines.Tests.Triggers;

/// <summary>
/// The ledger, the watcher, settle and the ingest against the real PostgreSQL and Swift, with
/// time under the test's control. Runs are started through a recording starter: what is under
/// test here is which objects are handed to which run id, and that none is handed over twice.
/// </summary>
[Integration]
public sealed class TriggerCycleTests : IAsyncLifetime
{
    private static readonly TimeSpan Settle = TimeSpan.FromSeconds(30);
    private readonly ObjectStoreFactory _stores = new(TestEnvironment.S3);
    private readonly string _schema = TestEnvironment.NewName("trg_");
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 11, 26, 12, 0, 0, TimeSpan.Zero));
    private readonly RecordingStarter _starter = new();
    private NpgsqlDataSource _db = null!;
    private PostgresTriggerStore _ledger = null!;
    private string _bucket = null!;
    private RegisteredTrigger _trigger = null!;

    public async Task InitializeAsync()
    {
        _db = await TestEnvironment.PostgresAsync();
        await new PostgresSchema(_db, _schema).CreateAsync(CancellationToken.None);
        _ledger = new PostgresTriggerStore(_db, _schema);
        _bucket = await TestEnvironment.NewBucketAsync(_stores.S3Client);
        await PutAsync("in/old.fastq", "there before");
        await PutAsync("in/old-notes.txt", "not matched");
        _trigger = await RegisterAsync(maxObjectsPerRun: 1000);
    }

    public async Task DisposeAsync()
    {
        await using (var cmd = _db.CreateCommand($"DROP SCHEMA IF EXISTS {_schema} CASCADE"))
        {
            await cmd.ExecuteNonQueryAsync();
        }

        await _db.DisposeAsync();
        _stores.Dispose();
    }

    [Fact]
    public async Task Objects_there_at_registration_are_not_work_and_new_ones_wait_for_settle_then_make_one_run()
    {
        var cycle = Cycle();
        await PutAsync("in/a.fastq", "a");
        await PutAsync("in/sub/b.fastq", "b");
        await PutAsync("in/c.txt", "not matched");

        var first = await cycle.RunAsync(_trigger, reconcile: false, CancellationToken.None);
        _time.Advance(Settle - TimeSpan.FromSeconds(1));
        var early = await cycle.RunAsync(_trigger, reconcile: false, CancellationToken.None);
        _time.Advance(TimeSpan.FromSeconds(1));
        var settled = await cycle.RunAsync(_trigger, reconcile: false, CancellationToken.None);

        Assert.Equal(2, first.Poll!.Recorded);
        Assert.Empty(first.RunsStarted);
        Assert.Empty(early.RunsStarted);
        var run = Assert.Single(settled.RunsStarted);
        Assert.Equal(["in/a.fastq", "in/sub/b.fastq"], _starter.Keys(run));
    }

    [Fact]
    public async Task A_second_upload_starts_a_second_run_with_only_the_new_objects_and_an_overwrite_is_new_work()
    {
        var cycle = Cycle();
        await PutAsync("in/a.fastq", "a");
        var first = await SettleAsync(cycle);
        await PutAsync("in/b.fastq", "b");
        await PutAsync("in/a.fastq", "a, second version");
        await PutAsync("in/old.fastq", "there before"); // the same bytes again: the same ETag, not new
        var second = await SettleAsync(cycle);

        Assert.Equal(2, _starter.Runs.Count);
        Assert.Equal(["in/a.fastq", "in/b.fastq"], _starter.Keys(Assert.Single(second.RunsStarted)));
        Assert.NotEqual(_starter.Runs[Assert.Single(first.RunsStarted)].Single(o => o.Key == "in/a.fastq").ETag, _starter.Runs[second.RunsStarted[0]].Single(o => o.Key == "in/a.fastq").ETag);
    }

    [Fact]
    public async Task A_flood_becomes_full_runs_at_once_and_the_rest_waits_for_settle()
    {
        var trigger = await RegisterAsync(maxObjectsPerRun: 5);
        var cycle = Cycle(maxObjectsPerRun: 5);
        await Parallel.ForEachAsync(Enumerable.Range(0, 12), async (i, _) => await PutAsync($"in/flood/{i:D2}.fastq", $"read {i}"));

        var now = await cycle.RunAsync(trigger, reconcile: false, CancellationToken.None);
        var later = await SettleAsync(cycle, trigger);

        Assert.Equal(2, now.RunsStarted.Count);
        Assert.All(now.RunsStarted, r => Assert.Equal(5, _starter.Runs[r].Count));
        Assert.Equal(2, _starter.Runs[Assert.Single(later.RunsStarted)].Count);
        Assert.Equal(12, _starter.Runs.Values.SelectMany(o => o).Select(o => o.Key).Distinct().Count());
    }

    [Fact]
    public async Task A_crash_between_claim_and_run_is_finished_later_under_the_same_run_id()
    {
        await PutAsync("in/a.fastq", "a");
        _starter.FailNext = 1;
        var crashed = await Record.ExceptionAsync(() => SettleAsync(Cycle()));
        var resumed = await Cycle().RunAsync(_trigger, reconcile: false, CancellationToken.None);
        _time.Advance(Settle);
        var after = await Cycle().RunAsync(_trigger, reconcile: false, CancellationToken.None);

        Assert.IsType<PipelinesException>(crashed);
        var run = Assert.Single(resumed.RunsStarted);
        Assert.Equal([run, run], _starter.Attempts);
        Assert.Equal(["in/a.fastq"], _starter.Keys(run));
        Assert.Empty(after.RunsStarted);
    }

    [Fact]
    public async Task A_batch_that_can_never_start_is_recorded_failed_and_not_retried()
    {
        await PutAsync("in/a.fastq", "a");
        _starter.Refuse = "image pipelines-samples/none:1 does not exist";

        var cut = await SettleAsync(Cycle());
        _time.Advance(Settle);
        var again = await Cycle().RunAsync(_trigger, reconcile: false, CancellationToken.None);
        var summary = Assert.Single(await _ledger.SummariesAsync(CancellationToken.None));

        Assert.Single(cut.BatchesFailed);
        Assert.Empty(again.BatchesFailed);
        Assert.Equal(1, summary.BatchesFailed);
        Assert.Equal(0, summary.RunsStarted);
    }

    [Fact]
    public async Task Two_trigger_processes_cycling_at_once_hand_every_object_to_exactly_one_run()
    {
        var trigger = await RegisterAsync(maxObjectsPerRun: 7);
        await Parallel.ForEachAsync(Enumerable.Range(0, 40), async (i, _) => await PutAsync($"in/many/{i:D2}.fastq", $"read {i}"));

        // Separate cycles and connections, as two processes have; the lock lets one in at a
        // time, and the ledger alone must keep them apart when it does not.
        var cycles = Enumerable.Range(0, 4).Select(_ => Cycle(maxObjectsPerRun: 7, new PostgresTriggerStore(_db, _schema))).ToList();
        for (var round = 0; round < 3; round++)
        {
            await Task.WhenAll(cycles.Select(c => c.RunAsync(trigger, reconcile: round == 1, CancellationToken.None)));
            _time.Advance(Settle);
        }

        var claims = await Task.WhenAll(Enumerable.Range(0, 4).Select(i => new PostgresTriggerStore(_db, _schema).ClaimAsync(trigger.Name, $"race-{i}", 3, _time.GetUtcNow(), CancellationToken.None)));
        var keys = _starter.Runs.Values.SelectMany(o => o).Select(o => o.Key).ToList();
        Assert.Equal(40, keys.Count);
        Assert.Equal(40, keys.Distinct().Count());
        Assert.All(claims, Assert.Null);
        Assert.Equal(_starter.Attempts.Count, _starter.Attempts.Distinct().Count());
    }

    [Fact]
    public async Task Claims_racing_without_the_lock_take_disjoint_objects_and_each_names_its_run()
    {
        var objects = Enumerable.Range(0, 30).Select(i => (new LedgerObject($"in/{i:D2}.fastq", i, $"etag{i}"), LedgerState.Pending, (string?)null)).ToList();
        await _ledger.RecordAsync(_trigger.Name, _bucket, objects, "test", _time.GetUtcNow(), CancellationToken.None);

        var batches = await Task.WhenAll(Enumerable.Range(0, 6).Select(i =>
            new PostgresTriggerStore(_db, _schema).ClaimAsync(_trigger.Name, $"run-{i}", 7, _time.GetUtcNow(), CancellationToken.None)));

        var claimed = batches.Where(b => b is not null).SelectMany(b => b!.Objects.Select(o => o.Key)).ToList();
        Assert.Equal(30, claimed.Count);
        Assert.Equal(30, claimed.Distinct().Count());
        foreach (var b in batches.Where(b => b is not null))
        {
            Assert.Equal(b!.Objects.Select(o => o.Key), (await _ledger.BatchObjectsAsync(b.RunId, CancellationToken.None)).Select(o => o.Key));
        }
    }

    [Fact]
    public async Task The_same_version_reported_by_watcher_and_events_many_times_at_once_is_one_ledger_row()
    {
        var etag = await PutAsync("in/a.fastq", "a");
        var ingest = new S3EventIngest(_ledger, _time, NullLogger<S3EventIngest>.Instance);
        var body = S3EventParserTests.AwsEvent(_bucket, "in/a.fastq", etag, 1);

        var results = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => ingest.HandleAsync(body, CancellationToken.None)));
        var polled = await Cycle().RunAsync(_trigger, reconcile: false, CancellationToken.None);
        var cut = await SettleAsync(Cycle());

        Assert.Equal(1, results.Sum(r => r.Accepted));
        Assert.Equal(7, results.Sum(r => r.Duplicates));
        Assert.Equal(0, polled.Poll!.Recorded);
        Assert.Equal(["in/a.fastq"], _starter.Keys(Assert.Single(cut.RunsStarted)));
    }

    [Fact]
    public async Task Bad_events_are_answered_record_by_record_and_start_nothing()
    {
        var ingest = new S3EventIngest(_ledger, _time, NullLogger<S3EventIngest>.Instance);

        var malformed = await ingest.HandleAsync("{\"Records\": [", CancellationToken.None);
        var unknown = await ingest.HandleAsync(S3EventParserTests.AwsEvent("no-such-bucket", "in/a.fastq", "e1", 1), CancellationToken.None);
        var escape = await ingest.HandleAsync(S3EventParserTests.AwsEvent(_bucket, "in/..%2F..%2Fetc%2Fpasswd.fastq", "e2", 1), CancellationToken.None);
        var outside = await ingest.HandleAsync(S3EventParserTests.AwsEvent(_bucket, "elsewhere/a.fastq", "e3", 1), CancellationToken.None);
        var unmatched = await ingest.HandleAsync(S3EventParserTests.AwsEvent(_bucket, "in/a.txt", "e4", 1), CancellationToken.None);
        var noEtag = await ingest.HandleAsync("""{"Records":[{"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"BUCKET"},"object":{"key":"in/x.fastq","size":1}}}]}""".Replace("BUCKET", _bucket, StringComparison.Ordinal), CancellationToken.None);
        var cut = await SettleAsync(Cycle());

        Assert.True(malformed.Malformed);
        Assert.StartsWith("malformed event body: the body is not JSON", malformed.Summary, StringComparison.Ordinal);
        Assert.Equal("no registered trigger watches bucket 'no-such-bucket'", Assert.Single(unknown.Notes).Reason);
        Assert.Equal(IngestOutcome.Rejected, Assert.Single(escape.Notes).Outcome);
        Assert.Contains("escapes the prefix", escape.Notes[0].Reason, StringComparison.Ordinal);
        Assert.Equal(IngestOutcome.Ignored, Assert.Single(outside.Notes).Outcome);
        Assert.Equal(IngestOutcome.Ignored, Assert.Single(unmatched.Notes).Outcome);
        Assert.Equal(IngestOutcome.Rejected, Assert.Single(noEtag.Notes).Outcome);
        Assert.Empty(cut.RunsStarted);
        Assert.Equal(1, Assert.Single(await _ledger.SummariesAsync(CancellationToken.None)).Rejected);
    }

    [Fact]
    public async Task An_object_removed_before_its_run_is_not_handed_to_one()
    {
        var ingest = new S3EventIngest(_ledger, _time, NullLogger<S3EventIngest>.Instance);
        await ingest.HandleAsync(S3EventParserTests.AwsEvent(_bucket, "in/gone.fastq", "e1", 1), CancellationToken.None);
        await ingest.HandleAsync(S3EventParserTests.AwsEvent(_bucket, "in/kept.fastq", "e2", 1), CancellationToken.None);

        var removed = await ingest.HandleAsync(S3EventParserTests.AwsEvent(_bucket, "in/gone.fastq", "", 0, "ObjectRemoved:Delete"), CancellationToken.None);
        var cut = await SettleAsync(Cycle());

        Assert.Equal(IngestOutcome.Removed, Assert.Single(removed.Notes).Outcome);
        Assert.Equal(["in/kept.fastq"], _starter.Keys(Assert.Single(cut.RunsStarted)));
    }

    [Fact]
    public async Task A_runs_outputs_under_the_watched_prefix_are_rejected_and_never_start_a_run()
    {
        var trigger = await RegisterAsync(maxObjectsPerRun: 1000, output: "in/results/", existing: 0);
        var ingest = new S3EventIngest(_ledger, _time, NullLogger<S3EventIngest>.Instance);
        await PutAsync("in/a.fastq", "a");
        await PutAsync("in/results/20261126-053012-7f3a9c/tasks/t/s/trimmed.fastq", "a run's output");
        var evented = await ingest.HandleAsync(S3EventParserTests.AwsEvent(_bucket, "in/results/20261126-053012-7f3a9c/tasks/t/s/again.fastq", "e1", 1), CancellationToken.None);

        var cut = await SettleAsync(Cycle(), trigger);

        Assert.Equal(["in/a.fastq"], _starter.Keys(Assert.Single(cut.RunsStarted)));
        Assert.Equal(IngestOutcome.Rejected, Assert.Single(evented.Notes).Outcome);
        Assert.Equal($"the key is a run's output under the workflow's output.uri s3://{_bucket}/in/results/", evented.Notes[0].Reason);
        Assert.Equal(2, Assert.Single(await _ledger.SummariesAsync(CancellationToken.None)).Rejected);
    }

    private TriggerCycle Cycle(int maxObjectsPerRun = 1000, PostgresTriggerStore? ledger = null) =>
        new(ledger ?? _ledger, _stores, _starter, new TriggerOptions { MaxObjectsPerRun = maxObjectsPerRun, FullListingLimit = 10_000 }, _time, NullLogger<TriggerCycle>.Instance);

    /// <summary>A poll, then settle, then a poll that cuts.</summary>
    [Fact]
    public async Task A_registration_over_a_missing_bucket_is_refused_and_leaves_nothing_registered()
    {
        var missing = TestEnvironment.NewName("gone-");
        var yaml = $"""
            version: 1
            name: gone
            input: {"{"} uri: "s3://{missing}/in/" {"}"}
            steps: [{"{"} name: s, image: "pipelines-samples/fastq-stats:1", command: [x] {"}"}]
            output: {"{"} uri: "s3://{_bucket}/out/" {"}"}
            trigger: {"{"} uri: "s3://{missing}/in/", include: ["**/*.fastq"], settle: 30s {"}"}
            """;
        var storage = new InMemoryStorage();
        var registrar = new TriggerRegistrar(_ledger, _stores, new Pipelines.Queue.HangfireRecurringJobs(new RecurringJobManager(storage)), new TriggerOptions(), Pipelines.Runs.LocalRoots.None, Pipelines.Tenancy.TenantOptions.None, _time);

        var e = await Assert.ThrowsAsync<PipelinesException>(() => registrar.RegisterAsync(yaml, "gone.yaml", null, [], processExisting: false, CancellationToken.None));

        Assert.Equal($"s3://{missing}: the bucket does not exist", e.Message);
        Assert.Null(await _ledger.GetAsync("gone", CancellationToken.None));
        using var connection = storage.GetConnection();
        Assert.Empty(connection.GetRecurringJobs());
    }

    private async Task<CycleResult> SettleAsync(TriggerCycle cycle, RegisteredTrigger? trigger = null)
    {
        await cycle.RunAsync(trigger ?? _trigger, reconcile: false, CancellationToken.None);
        _time.Advance(Settle);
        return await cycle.RunAsync(trigger ?? _trigger, reconcile: false, CancellationToken.None);
    }

    private async Task<RegisteredTrigger> RegisterAsync(int maxObjectsPerRun, string output = "out/", int existing = 2)
    {
        var yaml = $"""
            version: 1
            name: t{maxObjectsPerRun}
            input: {"{"} uri: "s3://{_bucket}/in/" {"}"}
            steps: [{"{"} name: s, image: "pipelines-samples/fastq-stats:1", command: [x] {"}"}]
            output: {"{"} uri: "s3://{_bucket}/{output}" {"}"}
            trigger: {"{"} uri: "s3://{_bucket}/in/", include: ["**/*.fastq"], settle: 30s {"}"}
            """;
        var registrar = new TriggerRegistrar(_ledger, _stores, new Pipelines.Queue.HangfireRecurringJobs(new RecurringJobManager(new InMemoryStorage())), new TriggerOptions(), Pipelines.Runs.LocalRoots.None, Pipelines.Tenancy.TenantOptions.None, _time);
        var registration = await registrar.RegisterAsync(yaml, "test.yaml", null, [], processExisting: false, CancellationToken.None);
        Assert.Equal(existing, registration.Existing);
        return registration.Trigger;
    }

    private async Task<string> PutAsync(string key, string content)
    {
        var store = _stores.Open($"s3://{_bucket}/");
        await store.Store.PutAsync(key, Encoding.UTF8.GetBytes(content), "text/plain", CancellationToken.None);
        return (await store.Store.StatAsync(key, CancellationToken.None))!.ETag!;
    }

    private sealed class RecordingStarter : ITriggerRunStarter
    {
        public ConcurrentDictionary<string, IReadOnlyList<LedgerObject>> Runs { get; } = new(StringComparer.Ordinal);

        public ConcurrentQueue<string> AttemptQueue { get; } = new();

        public List<string> Attempts => AttemptQueue.ToList();

        public int FailNext { get; set; }

        public string? Refuse { get; set; }

        public IReadOnlyList<string> Keys(string runId) => Runs[runId].Select(o => o.Key).ToList();

        public Task StartAsync(RegisteredTrigger trigger, TriggerBatch batch, CancellationToken cancellationToken)
        {
            AttemptQueue.Enqueue(batch.RunId);
            if (FailNext > 0)
            {
                FailNext--;
                throw new PipelinesException("the process stopped here", retryHelps: true);
            }

            if (Refuse is not null)
            {
                throw new PipelinesException(Refuse, retryHelps: false);
            }

            Assert.True(Runs.TryAdd(batch.RunId, batch.Objects), $"run {batch.RunId} started twice");
            return Task.CompletedTask;
        }
    }
}
