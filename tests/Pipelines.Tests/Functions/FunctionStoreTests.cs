using Npgsql;
using Pipelines.Functions;
using Pipelines.RunStore;
using Pipelines.Tests.Support;

namespace Pipelines.Tests.Functions;

/// <summary>The function store against the real PostgreSQL, in a schema of its own per test class.</summary>
public sealed class FunctionStoreTests : IAsyncLifetime
{
    private static readonly DateTimeOffset Now = new(2026, 12, 1, 12, 0, 0, TimeSpan.Zero);
    private static readonly CancellationToken None = CancellationToken.None;
    private readonly string _schema = TestEnvironment.NewName("fn_");
    private NpgsqlDataSource _db = null!;
    private PostgresFunctionStore _store = null!;

    public async Task InitializeAsync()
    {
        _db = await TestEnvironment.PostgresAsync();
        _store = new PostgresFunctionStore(_db, _schema);
        await new PostgresSchema(_db, _schema).CreateAsync(None);
    }

    public async Task DisposeAsync()
    {
        await using (var cmd = _db.CreateCommand($"DROP SCHEMA IF EXISTS {_schema} CASCADE"))
        {
            await cmd.ExecuteNonQueryAsync();
        }

        await _db.DisposeAsync();
    }

    private static FunctionSpec Spec(string name, string command = "cat") =>
        FunctionParser.Parse($"name: {name}\nimage: busybox:1\ncommand: [\"{command}\", \"{{input}}\"]\n", "f.yaml");

    private Task<DeployResult> DeployAsync(string name, string content, string command = "cat", DateTimeOffset? at = null) =>
        _store.DeployAsync(Spec(name, command), "yaml of " + content, "sha256:" + content, content, "tester", at ?? Now, None);

    [Fact]
    public async Task Initialize_can_run_again_and_its_sql_is_idempotent()
    {
        await new PostgresSchema(_db, _schema).CreateAsync(None);
        await using var cmd = _db.CreateCommand(PostgresFunctionStore.SchemaSql(_schema));
        await cmd.ExecuteNonQueryAsync();
    }

    [Fact]
    public async Task A_first_deploy_makes_version_1_and_the_same_content_again_changes_nothing()
    {
        var first = await DeployAsync("echo", "c1");
        var again = await DeployAsync("echo", "c1");

        Assert.Equal((1, true, (int?)null), (first.Function.Version, first.Created, first.Replaced));
        Assert.Equal((1, false), (again.Function.Version, again.Created));
        Assert.Single(await _store.VersionsAsync("echo", None));
    }

    [Fact]
    public async Task Changed_content_makes_the_next_version_current_and_keeps_the_old_one_pinned()
    {
        await DeployAsync("resize", "c1");
        var second = await DeployAsync("resize", "c2", command: "head");

        var current = await _store.GetAsync("resize", null, None);
        var old = await _store.GetAsync("resize", 1, None);

        Assert.Equal((2, true, (int?)1), (second.Function.Version, second.Created, second.Replaced));
        Assert.Equal((2, "sha256:c2", "head"), (current!.Version, current.ImageDigest, current.Spec.Command[0]));
        Assert.Equal((1, "sha256:c1", "cat", "yaml of c1"), (old!.Version, old.ImageDigest, old.Spec.Command[0], old.Yaml));
        Assert.Equal("function:resize@2", current.Owner);
    }

    [Fact]
    public async Task Concurrent_deploys_of_one_content_make_one_version_and_of_two_contents_two()
    {
        var same = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => DeployAsync("race", "same")));
        var two = await Task.WhenAll(DeployAsync("race", "a"), DeployAsync("race", "b"));

        Assert.Single(same, r => r.Created);
        Assert.All(same, r => Assert.Equal(1, r.Function.Version));
        Assert.Equal([2, 3], two.Select(r => r.Function.Version).Order());
        Assert.Equal(3, (await _store.VersionsAsync("race", None)).Count);
    }

    [Fact]
    public async Task List_gives_each_function_once_at_its_current_version_and_delete_removes_everything()
    {
        await DeployAsync("b-fn", "1");
        await DeployAsync("a-fn", "1");
        await DeployAsync("a-fn", "2");
        await _store.AddInvocationAsync(Invocation("a-fn", 2, "i1", Now), None);

        Assert.Equal([("a-fn", 2), ("b-fn", 1)], (await _store.ListAsync(None)).Select(f => (f.Name, f.Version)));
        Assert.Equal([2, 1], (await _store.DeleteAsync("a-fn", None)).Order().Reverse());
        Assert.Empty(await _store.DeleteAsync("a-fn", None));
        Assert.Null(await _store.GetAsync("a-fn", null, None));
        Assert.Null(await _store.GetInvocationAsync("i1", None));
        Assert.Equal(["b-fn"], (await _store.ListAsync(None)).Select(f => f.Name));

        var again = await DeployAsync("a-fn", "3");
        Assert.Equal(1, again.Function.Version);
    }

    [Fact]
    public async Task An_invocation_ends_once_and_reads_back_with_what_it_recorded()
    {
        var deployed = (await DeployAsync("echo", "c1")).Function;
        await _store.AddInvocationAsync(Invocation("echo", 1, "x1", Now, InvocationStatus.Queued, isAsync: true), None);

        Assert.True(await _store.TryStartAsync("x1", deployed, null, None));
        Assert.True(await _store.FinishAsync("x1", new InvocationEnd(InvocationStatus.Succeeded, 200, "ab", 12, "out.txt", "text/plain", 3.5, "c0ffee", null), Now.AddSeconds(1), None));
        Assert.False(await _store.FinishAsync("x1", new InvocationEnd(InvocationStatus.Failed, 502, null, null, null, null, 9, null, "late"), Now.AddSeconds(2), None));
        Assert.False(await _store.TryStartAsync("x1", deployed, null, None));

        var r = await _store.GetInvocationAsync("x1", None);
        Assert.Equal((InvocationStatus.Succeeded, 200, "ab", 12L, "text/plain", 3.5, "c0ffee", (string?)null), (r!.Status, r.HttpStatus, r.OutputSha256, r.OutputBytes, r.ContentType, r.LatencyMs, r.ContainerId, r.Error));
        Assert.Equal(("in-sha", 7L, "sha256:c1", true, "tester"), (r.InputSha256, r.InputBytes, r.ImageDigest, r.Async, r.Caller));
        Assert.Equal(Now.AddSeconds(1), r.FinishedAt);
    }

    [Fact]
    public async Task Stats_count_requests_and_errors_and_compute_p50_and_p95_per_version()
    {
        await DeployAsync("stat", "1");
        await DeployAsync("stat", "2");
        for (var i = 1; i <= 100; i++)
        {
            var id = "s" + i;
            await _store.AddInvocationAsync(Invocation("stat", 2, id, Now.AddSeconds(i)), None);
            var status = i % 10 == 0 ? InvocationStatus.Failed : i % 25 == 0 ? InvocationStatus.TimedOut : InvocationStatus.Succeeded;
            await _store.FinishAsync(id, new InvocationEnd(status, 200, null, null, null, null, i, null, null), Now, None);
        }

        await _store.AddInvocationAsync(Invocation("stat", 1, "old", Now), None);
        await _store.FinishAsync("old", new InvocationEnd(InvocationStatus.Refused, 429, null, null, null, null, 1, null, "full"), Now, None);

        var stats = await _store.StatsAsync("stat", None);

        var v2 = stats.Single(s => s.Version == 2);
        Assert.Equal((100L, 12L), (v2.Requests, v2.Errors));
        Assert.Equal(50.5, v2.P50Ms!.Value, 3);
        Assert.Equal(95.05, v2.P95Ms!.Value, 3);
        Assert.Equal(Now.AddSeconds(100), v2.Last);
        Assert.Equal((1L, 1L), (stats.Single(s => s.Version == 1).Requests, stats.Single(s => s.Version == 1).Errors));
    }

    [Fact]
    public async Task Prune_keeps_the_newest_and_the_young_and_deletes_at_most_one_batch()
    {
        await DeployAsync("many", "1");
        await using (var cmd = _db.CreateCommand($"""
            INSERT INTO {_schema}.function_invocations (id, function, version, image_digest, status, async, input_bytes, started_at)
            SELECT 'p' || g, 'many', 1, 'sha256:1', 'succeeded', false, 0, @now - g * interval '1 second'
            FROM generate_series(1, 12000) g
            """))
        {
            cmd.Parameters.AddWithValue("now", Now);
            await cmd.ExecuteNonQueryAsync();
        }

        var first = await _store.PruneAsync(new InvocationRetention(1000, TimeSpan.FromDays(30)), Now, None);
        var second = await _store.PruneAsync(new InvocationRetention(1000, TimeSpan.FromDays(30)), Now, None);
        var third = await _store.PruneAsync(new InvocationRetention(1000, TimeSpan.FromDays(30)), Now, None);
        var byAge = await _store.PruneAsync(new InvocationRetention(100_000, TimeSpan.FromSeconds(500)), Now, None);

        Assert.Equal((PostgresFunctionStore.PruneBatch, PostgresFunctionStore.PruneBatch, 1000), (first, second, third));
        Assert.Equal(500, byAge);
        Assert.NotNull(await _store.GetInvocationAsync("p1", None));
        Assert.NotNull(await _store.GetInvocationAsync("p499", None));
        Assert.Null(await _store.GetInvocationAsync("p501", None));
        Assert.Equal(500, (await _store.StatsAsync("many", None)).Single().Requests);
    }

    private static InvocationRecord Invocation(string fn, int version, string id, DateTimeOffset at, InvocationStatus status = InvocationStatus.Running, bool isAsync = false) =>
        new(id, fn, version, "sha256:c1", status, isAsync, "in-sha", 7, null, null, null, null, null, null, null, at, null, null, "tester");
}
