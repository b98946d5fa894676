using Npgsql;
using Pipelines.Functions;
using Pipelines.Hosting;
using Pipelines.Queue;
using Pipelines.RunStore;
using Pipelines.Tenancy;
using Pipelines.Tests.Support;
using Pipelines.Usage;

namespace Pipelines.Tests.Functions;

/// <summary>
/// The behaviour of <see cref="IFunctionStore"/> that both stores share, run against each of them:
/// deploys and their versions, an invocation's one-way states, the figures and the retention,
/// and one answer for what does not exist. Each test has a store of its own (the figures and the
/// prune see every function).
/// </summary>
public abstract class FunctionStoreContract : IAsyncLifetime
{
    protected static readonly DateTimeOffset Now = new(2026, 12, 1, 12, 0, 0, TimeSpan.Zero);
    private static readonly CancellationToken None = CancellationToken.None;
    private const int Callers = 8;

    protected IFunctionStore Store { get; private set; } = null!;

    protected abstract Task<IFunctionStore> CreateStoreAsync();

    /// <summary>The usage ledger the store writes invocations' ends to (the whole ledger, not a view).</summary>
    private protected abstract IUsageStore Ledger { get; }

    /// <summary>What the tests see of the store: all of it, or one tenant's view (which must behave the same for its own).</summary>
    protected virtual TenantScope Scope => TenantScope.All;

    public virtual Task DisposeAsync() => Task.CompletedTask;

    public async Task InitializeAsync() => Store = (await CreateStoreAsync()).For(Scope);

    /// <summary>Records invocations of a function that started at the given times; a store may do it faster than one by one.</summary>
    protected virtual async Task AddStartedAsync(string function, int version, IEnumerable<(string Id, DateTimeOffset StartedAt)> invocations)
    {
        foreach (var (id, at) in invocations)
        {
            await Store.AddInvocationAsync(Invocation(function, version, id, at, InvocationStatus.Succeeded), None);
        }
    }

    [Fact]
    public async Task A_first_deploy_makes_version_1_and_the_same_content_again_changes_nothing()
    {
        var first = await DeployAsync("echo", "c1");
        var again = await DeployAsync("echo", "c1", at: Now.AddMinutes(1));

        Assert.Equal((1, true, (int?)null), (first.Function.Version, first.Created, first.Replaced));
        Assert.Equal((1, false, (int?)null, Now), (again.Function.Version, again.Created, again.Replaced, again.Function.DeployedAt));
        Assert.Single(await Store.VersionsAsync("echo", None));
    }

    [Fact]
    public async Task Changed_content_makes_the_next_version_current_and_keeps_the_old_one_pinned()
    {
        await DeployAsync("resize", "c1");
        var second = await DeployAsync("resize", "c2", command: "head");

        var current = await Store.GetAsync("resize", null, None);
        var old = await Store.GetAsync("resize", 1, None);

        Assert.Equal((2, true, (int?)1), (second.Function.Version, second.Created, second.Replaced));
        Assert.Equal((2, "sha256:c2", "head", "c2", "tester"), (current!.Version, current.ImageDigest, current.Spec.Command[0], current.ContentSha256, current.DeployedBy));
        Assert.Equal((1, "sha256:c1", "cat", "yaml of c1", Now), (old!.Version, old.ImageDigest, old.Spec.Command[0], old.Yaml, old.DeployedAt));
        Assert.Equal(Scope.Tenant is null ? "function:resize@2" : $"function:{Scope.Tenant}/resize@2", current.Owner);
        Assert.Equal([2, 1], (await Store.VersionsAsync("resize", None)).Select(v => v.Version));
    }

    [Fact]
    public async Task Going_back_to_an_older_content_makes_a_new_version_not_the_old_one_again()
    {
        await DeployAsync("back", "a");
        await DeployAsync("back", "b");

        var third = await DeployAsync("back", "a");

        Assert.Equal((3, true, (int?)2), (third.Function.Version, third.Created, third.Replaced));
    }

    [Fact]
    public async Task Concurrent_deploys_of_one_content_make_one_version_and_of_two_contents_two()
    {
        var same = await Task.WhenAll(Enumerable.Range(0, Callers).Select(_ => Task.Run(() => DeployAsync("race", "same"))));
        var two = await Task.WhenAll(Task.Run(() => DeployAsync("race", "a")), Task.Run(() => DeployAsync("race", "b")));

        Assert.Single(same, r => r.Created);
        Assert.All(same, r => Assert.Equal(1, r.Function.Version));
        Assert.Equal([2, 3], two.Select(r => r.Function.Version).Order());
        Assert.Equal(3, (await Store.VersionsAsync("race", None)).Count);
    }

    [Fact]
    public async Task List_gives_each_function_once_at_its_current_version_by_ordinal_name()
    {
        await DeployAsync("b-fn", "1");
        await DeployAsync("a-fn", "1");
        await DeployAsync("a-fn", "2");
        await DeployAsync("a1", "1");
        await DeployAsync("a-z", "1");

        Assert.Equal([("a-fn", 2), ("a-z", 1), ("a1", 1), ("b-fn", 1)], (await Store.ListAsync(None)).Select(f => (f.Name, f.Version)));
    }

    [Fact]
    public async Task Delete_removes_the_versions_and_invocations_and_a_deploy_after_it_starts_at_version_1()
    {
        await DeployAsync("b-fn", "1");
        await DeployAsync("a-fn", "1");
        await DeployAsync("a-fn", "2");
        await Store.AddInvocationAsync(Invocation("a-fn", 2, "i1", Now), None);
        await Store.AddInvocationAsync(Invocation("b-fn", 1, "i2", Now), None);

        Assert.Equal([2, 1], await Store.DeleteAsync("a-fn", None));
        Assert.Empty(await Store.DeleteAsync("a-fn", None));
        Assert.Null(await Store.GetAsync("a-fn", null, None));
        Assert.Null(await Store.GetAsync("a-fn", 1, None));
        Assert.Null(await Store.GetInvocationAsync("i1", None));
        Assert.NotNull(await Store.GetInvocationAsync("i2", None));
        Assert.Equal(["b-fn"], (await Store.ListAsync(None)).Select(f => f.Name));
        Assert.Equal(1, (await DeployAsync("a-fn", "3")).Function.Version);
    }

    [Fact]
    public async Task Reads_and_changes_of_what_does_not_exist_find_nothing_and_write_nothing()
    {
        var deployed = (await DeployAsync("echo", "c1")).Function;

        Assert.Null(await Store.GetAsync("nope", null, None));
        Assert.Null(await Store.GetAsync("nope", 1, None));
        Assert.Null(await Store.GetAsync("echo", 2, None));
        Assert.Empty(await Store.VersionsAsync("nope", None));
        Assert.Null(await Store.GetInvocationAsync("nope", None));
        Assert.Empty(await Store.ListInvocationsAsync("nope", 10, None));
        Assert.False(await Store.TryStartAsync("nope", deployed, null, None));
        Assert.False(await Store.FinishAsync("nope", Ended(InvocationStatus.Succeeded, 1), Now, None));
        Assert.Empty(await Store.StatsAsync("nope", null, None));
    }

    [Fact]
    public async Task An_invocation_of_a_function_that_does_not_exist_or_with_an_id_that_does_is_refused()
    {
        await DeployAsync("echo", "c1");
        await Store.AddInvocationAsync(Invocation("echo", 1, "x1", Now, caller: "first"), None);

        var unknown = await Assert.ThrowsAsync<UnknownFunctionException>(() => Store.AddInvocationAsync(Invocation("gone", 1, "x2", Now), None));
        await Assert.ThrowsAsync<ArgumentException>(() => Store.AddInvocationAsync(Invocation("echo", 1, "x1", Now, caller: "second"), None));

        Assert.Equal(("gone", false), (unknown.Name, unknown.RetryHelps));
        Assert.Null(await Store.GetInvocationAsync("x2", None));
        Assert.Equal("first", (await Store.GetInvocationAsync("x1", None))!.Caller);
    }

    [Fact]
    public async Task An_invocation_is_recorded_with_its_start_only_whatever_else_it_is_given()
    {
        await DeployAsync("echo", "c1");
        var given = Invocation("echo", 1, "x1", Now) with { OutputSha256 = "early", HttpStatus = 200, LatencyMs = 1, FinishedAt = Now, Error = "early", ShadowEqual = true };

        await Store.AddInvocationAsync(given, None);

        var r = await Store.GetInvocationAsync("x1", None);
        Assert.Equal(given with { OutputSha256 = null, HttpStatus = null, LatencyMs = null, FinishedAt = null, Error = null, ShadowEqual = null }, r);
    }

    [Fact]
    public async Task An_invocation_ends_once_and_reads_back_with_what_it_recorded()
    {
        var deployed = (await DeployAsync("echo", "c1")).Function;
        await Store.AddInvocationAsync(Invocation("echo", 1, "x1", Now, InvocationStatus.Queued, isAsync: true), None);

        Assert.True(await Store.TryStartAsync("x1", deployed, null, None));
        Assert.True(await Store.TryStartAsync("x1", deployed, null, None));
        Assert.True(await Store.FinishAsync("x1", new InvocationEnd(InvocationStatus.Succeeded, 200, "ab", 12, "out.txt", "text/plain", 3.5, "c0ffee", null), Now.AddSeconds(1), None));
        Assert.False(await Store.FinishAsync("x1", new InvocationEnd(InvocationStatus.Failed, 502, null, null, null, null, 9, null, "late"), Now.AddSeconds(2), None));
        Assert.False(await Store.TryStartAsync("x1", deployed, null, None));

        var r = await Store.GetInvocationAsync("x1", None);
        Assert.Equal((InvocationStatus.Succeeded, 200, "ab", 12L, "out.txt", "text/plain", 3.5, "c0ffee", (string?)null), (r!.Status, r.HttpStatus, r.OutputSha256, r.OutputBytes, r.OutputName, r.ContentType, r.LatencyMs, r.ContainerId, r.Error));
        Assert.Equal(("in-sha", 7L, "sha256:c1", true, "tester"), (r.InputSha256, r.InputBytes, r.ImageDigest, r.Async, r.Caller));
        Assert.Equal(Now.AddSeconds(1), r.FinishedAt);
    }

    [Fact]
    public async Task A_hold_says_why_a_queued_or_started_invocation_waits_puts_it_back_to_queued_and_never_touches_an_ended_one()
    {
        var deployed = (await DeployAsync("echo", "c1")).Function;
        await Store.AddInvocationAsync(Invocation("echo", 1, "x1", Now, InvocationStatus.Queued, isAsync: true), None);
        await Store.AddInvocationAsync(Invocation("echo", 1, "x2", Now, InvocationStatus.Queued, isAsync: true), None);

        await Store.HoldAsync("x1", "held by the quota A", None);
        Assert.True(await Store.TryStartAsync("x2", deployed, null, None));
        await Store.HoldAsync("x2", "held by the quota B", None);

        Assert.Equal((InvocationStatus.Queued, "held by the quota A"), await StatusAsync("x1"));
        Assert.Equal((InvocationStatus.Queued, "held by the quota B"), await StatusAsync("x2"));

        // Started again, the hold is cleared; ended, a late hold writes nothing.
        Assert.True(await Store.TryStartAsync("x2", deployed, null, None));
        Assert.Equal((InvocationStatus.Running, (string?)null), await StatusAsync("x2"));
        Assert.True(await Store.FinishAsync("x2", new InvocationEnd(InvocationStatus.Succeeded, 200, "ab", 12, "out.txt", "text/plain", 3.5, "c0ffee", null), Now.AddSeconds(1), None));
        await Store.HoldAsync("x2", "late", None);
        Assert.Equal((InvocationStatus.Succeeded, (string?)null), await StatusAsync("x2"));

        async Task<(InvocationStatus, string?)> StatusAsync(string id) => await Store.GetInvocationAsync(id, None) is { } r ? (r.Status, r.Held) : throw new InvalidOperationException("no invocation " + id);
    }

    [Fact]
    public async Task Async_invocations_wait_for_the_dispatcher_oldest_first_and_count_in_flight_once_released_until_they_end_or_a_quota_holds_them()
    {
        var deployed = (await DeployAsync("echo", "c1")).Function;
        var backlog = (IInvocationBacklog)Store;
        var tenant = Scope.Tenant ?? TenantId.Default;
        await Store.AddInvocationAsync(Invocation("echo", 1, "b", Now.AddSeconds(1), InvocationStatus.Queued, isAsync: true) with { TraceParent = "00-trace-b" }, None);
        await Store.AddInvocationAsync(Invocation("echo", 1, "a", Now, InvocationStatus.Queued, isAsync: true), None);
        await Store.AddInvocationAsync(Invocation("echo", 1, "c", Now.AddSeconds(2), InvocationStatus.Queued, isAsync: true), None);
        await Store.AddInvocationAsync(Invocation("echo", 1, "sync", Now, InvocationStatus.Running), None);

        Assert.Equal([new InvocationLoad(tenant, 3, 0)], await backlog.LoadsAsync(None));
        var oldest = await backlog.OldestPendingAsync(tenant, 2, None);
        Assert.Equal([new PendingInvocation("a", null), new PendingInvocation("b", "00-trace-b")], oldest);

        await backlog.MarkReleasedAsync(["a", "b"], Now, None);
        Assert.Equal([new InvocationLoad(tenant, 1, 2)], await backlog.LoadsAsync(None));
        Assert.Equal([new PendingInvocation("c", null)], await backlog.OldestPendingAsync(tenant, 5, None));

        // The dispatcher says why the one left waits: on it alone (the released are not waiting), and it still counts as waiting.
        await backlog.HoldPendingAsync(tenant, "waiting for a worker slot", None);
        Assert.Equal(("waiting for a worker slot", (string?)null, (string?)null), ((await Store.GetInvocationAsync("c", None))!.Held, (await Store.GetInvocationAsync("a", None))!.Held, (await Store.GetInvocationAsync("b", None))!.Held));
        Assert.Equal([new InvocationLoad(tenant, 1, 2)], await backlog.LoadsAsync(None));

        // Started, still in flight; held by a quota, it holds no worker; ended, it is gone from the counts.
        Assert.True(await Store.TryStartAsync("a", deployed, null, None));
        await Store.HoldAsync("b", "held by the quota X", None);
        Assert.Equal([new InvocationLoad(tenant, 1, 1)], await backlog.LoadsAsync(None));
        Assert.True(await Store.FinishAsync("a", Ended(InvocationStatus.Succeeded, 1), Now.AddSeconds(3), None));
        Assert.Equal([new InvocationLoad(tenant, 1, 0)], await backlog.LoadsAsync(None));

        // Released, the wait's words go and it is in flight; a quota's hold of a released one is not the dispatcher's to write.
        await backlog.MarkReleasedAsync(["c"], Now, None);
        await backlog.HoldPendingAsync(tenant, "waiting again", None);
        Assert.Equal(((string?)null, "held by the quota X"), ((await Store.GetInvocationAsync("c", None))!.Held, (await Store.GetInvocationAsync("b", None))!.Held));
        Assert.Equal([new InvocationLoad(tenant, 0, 1)], await backlog.LoadsAsync(None));

        // The record reads back as written: the trace is the job's, not the record's.
        Assert.Null((await Store.GetInvocationAsync("b", None))!.TraceParent);
    }

    [Fact]
    public async Task Ended_invocations_are_written_in_one_call_leaving_out_unknown_functions_and_ids_already_there()
    {
        var deployed = (await DeployAsync("echo", "c1")).Function;
        await Store.AddInvocationAsync(Invocation("echo", 1, "there", Now), None);
        var ok = new EndedInvocation(
            FunctionService.Record("e1", deployed.ServedBy("2.0", "sha256:c"), new FunctionInput("/in", [], "text/plain", "in-sha", 7), InvocationStatus.Running, isAsync: false, "tester", Now, Routes.Canary),
            new InvocationEnd(InvocationStatus.Succeeded, 200, "ab", 12, "out.txt", "text/plain", 3.5, "c0ffee", null, ColdStart: true),
            Now.AddSeconds(1));
        var failed = new EndedInvocation(Invocation("echo", 1, "e2", Now), new InvocationEnd(InvocationStatus.Failed, 502, null, null, null, null, 9, "c0ffee", "exited with code 3"), Now.AddSeconds(2));
        var unknown = new EndedInvocation(Invocation("gone", 1, "e3", Now), Ended(InvocationStatus.Succeeded, 1), Now);
        var again = new EndedInvocation(Invocation("echo", 1, "there", Now), Ended(InvocationStatus.Succeeded, 1), Now);

        var written = await Store.AddEndedAsync([ok, failed, unknown, again], None);

        Assert.Equal(2, written);
        Assert.Equal(ok.Record, await Store.GetInvocationAsync("e1", None));
        Assert.Equal(failed.Record, await Store.GetInvocationAsync("e2", None));
        Assert.Null(await Store.GetInvocationAsync("e3", None));
        Assert.Equal(InvocationStatus.Running, (await Store.GetInvocationAsync("there", None))!.Status);
        var stats = await Store.StatsAsync("echo", null, None);
        Assert.Equal([("2.0", 1L, 0L, 1L), (null, 2L, 1L, 0L)], stats.Select(x => (x.AlgorithmVersion, x.Requests, x.Errors, x.ColdStarts)));
    }

    [Fact]
    public async Task An_invocation_s_end_writes_one_usage_record_in_its_tenant_and_a_batch_one_for_each_row_it_wrote()
    {
        await DeployAsync("metered", "c1");
        await Store.AddInvocationAsync(Invocation("metered", 1, "m1", Now, InvocationStatus.Queued, isAsync: true), None);
        await Store.AddInvocationAsync(Invocation("metered", 1, "there", Now), None);
        var used = new InvocationEnd(InvocationStatus.Succeeded, 200, "ab", 12, "out.txt", "text/plain", 1500, "c0ffee", null,
            Resources: new Pipelines.Containers.ResourceUse(0.25, 1_000_000, null, null, 1.4), ReservedMemoryBytes: 512L * 1024 * 1024);

        Assert.True(await Store.FinishAsync("m1", used, Now.AddSeconds(2), None));
        Assert.False(await Store.FinishAsync("m1", used with { Status = InvocationStatus.Failed, LatencyMs = 9000 }, Now.AddSeconds(3), None));
        var http = new EndedInvocation(Invocation("metered", 1, "m2", Now), new InvocationEnd(InvocationStatus.Failed, 502, null, null, null, null, 250, "c0ffee", "exited",
            ReservedMemoryBytes: 1L << 30, ResourceNote: "not one request's"), Now.AddSeconds(1));
        var again = new EndedInvocation(Invocation("metered", 1, "there", Now), Ended(InvocationStatus.Succeeded, 1), Now);
        Assert.Equal(1, await Store.AddEndedAsync([http, again], None));

        var records = await Ledger.RecordsAsync(new UsageQuery(Function: "metered"), None).ToListAsync();
        Assert.Equal(["m2", "m1"], records.Select(r => r.Id));
        var tenant = Scope.Tenant ?? TenantId.Default;
        Assert.All(records, r => Assert.Equal((tenant, UsageKinds.Invocation, 1, "stable"), (r.Tenant, r.Kind, r.Version!.Value, r.Route)));
        var m1 = records[1];
        Assert.Equal(
            (UsageOutcomes.Succeeded, 1.5, (double?)0.25, (long?)1_000_000, (long?)(512L * 1024 * 1024), (double?)0.75, 7L, 12L, Now, Now.AddSeconds(2)),
            (m1.Outcome, m1.WallSeconds, m1.CpuSeconds, m1.PeakMemoryBytes, m1.ReservedMemoryBytes, m1.GbSeconds, m1.BytesIn, m1.BytesOut, m1.StartedAt, m1.EndedAt));
        Assert.Equal((UsageOutcomes.Failed, 0.25, (double?)null, (double?)0.25, "not one request's"), (records[0].Outcome, records[0].WallSeconds, records[0].CpuSeconds, records[0].GbSeconds, records[0].Reason));
    }

    [Fact]
    public async Task Of_concurrent_endings_exactly_one_is_recorded()
    {
        await DeployAsync("echo", "c1");
        await Store.AddInvocationAsync(Invocation("echo", 1, "x1", Now), None);

        var ends = await Task.WhenAll(Enumerable.Range(0, Callers).Select(i => Task.Run(() =>
            Store.FinishAsync("x1", Ended(InvocationStatus.Succeeded, i), Now.AddSeconds(i), None))));

        var winner = Array.IndexOf(ends, true);
        Assert.Single(ends, e => e);
        var r = await Store.GetInvocationAsync("x1", None);
        Assert.Equal(((double?)winner, (DateTimeOffset?)Now.AddSeconds(winner)), (r!.LatencyMs, r.FinishedAt));
    }

    [Fact]
    public async Task A_queued_invocation_started_by_its_job_records_what_serves_it()
    {
        var deployed = (await DeployAsync("echo", "c1")).Function;
        await Store.AddInvocationAsync(Invocation("echo", 1, "x1", Now, InvocationStatus.Queued, isAsync: true), None);

        Assert.True(await Store.TryStartAsync("x1", deployed.ServedBy("2.0", "sha256:canary"), Routes.Canary, None));

        var r = await Store.GetInvocationAsync("x1", None);
        Assert.Equal((InvocationStatus.Running, "sha256:canary", "2.0", Routes.Canary), (r!.Status, r.ImageDigest, r.AlgorithmVersion, r.Route));
    }

    [Fact]
    public async Task A_functions_invocations_are_listed_newest_first_then_by_id_up_to_the_limit()
    {
        await DeployAsync("echo", "c1");
        await DeployAsync("other", "c1");
        await Store.AddInvocationAsync(Invocation("echo", 1, "b", Now), None);
        await Store.AddInvocationAsync(Invocation("echo", 1, "a", Now), None);
        await Store.AddInvocationAsync(Invocation("echo", 1, "old", Now.AddSeconds(-1)), None);
        await Store.AddInvocationAsync(Invocation("echo", 1, "new", Now.AddSeconds(1)), None);
        await Store.AddInvocationAsync(Invocation("other", 1, "elsewhere", Now.AddSeconds(5)), None);

        Assert.Equal(["new", "a", "b", "old"], (await Store.ListInvocationsAsync("echo", 10, None)).Select(r => r.Id));
        Assert.Equal(["new", "a"], (await Store.ListInvocationsAsync("echo", 2, None)).Select(r => r.Id));
    }

    [Fact]
    public async Task Stats_count_requests_and_errors_and_compute_p50_and_p95_per_version()
    {
        await DeployAsync("stat", "1");
        await DeployAsync("stat", "2");
        for (var i = 1; i <= 100; i++)
        {
            var id = "s" + i;
            await Store.AddInvocationAsync(Invocation("stat", 2, id, Now.AddSeconds(i)), None);
            var status = i % 10 == 0 ? InvocationStatus.Failed : i % 25 == 0 ? InvocationStatus.TimedOut : InvocationStatus.Succeeded;
            await Store.FinishAsync(id, Ended(status, i), Now, None);
        }

        await Store.AddInvocationAsync(Invocation("stat", 1, "old", Now), None);
        await Store.FinishAsync("old", new InvocationEnd(InvocationStatus.Refused, 429, null, null, null, null, 1, null, "full"), Now, None);
        await Store.AddInvocationAsync(Invocation("stat", 1, "running", Now.AddSeconds(-5)), None);

        var stats = await Store.StatsAsync("stat", null, None);

        Assert.Equal([2, 1], stats.Select(s => s.Version));
        var v2 = stats[0];
        Assert.Equal((100L, 12L, 100L, 0L), (v2.Requests, v2.Errors, v2.Ended, v2.Refused));
        Assert.Equal(50.5, v2.P50Ms!.Value, 3);
        Assert.Equal(95.05, v2.P95Ms!.Value, 3);
        Assert.Equal(Now.AddSeconds(100), v2.Last);
        Assert.Equal(0.12, v2.ErrorRate!.Value, 6);
        var v1 = stats[1];
        Assert.Equal((2L, 1L, 1L, 1L, 0L), (v1.Requests, v1.Errors, v1.Ended, v1.Refused, v1.Ran));
        Assert.Equal((1.0, 1.0, (DateTimeOffset?)Now), (v1.P50Ms, v1.P95Ms, v1.Last));
    }

    [Fact]
    public async Task Stats_keep_algorithm_versions_and_shadow_copies_apart_and_count_cold_starts_and_equal_answers()
    {
        var deployed = (await DeployAsync("gray", "1")).Function;
        var stable = deployed.ServedBy("1.0", "sha256:s");
        var canary = deployed.ServedBy("2.0", "sha256:c");
        await AddEndedAsync("p1", stable, Routes.Stable, 10, coldStart: true);
        await AddEndedAsync("p2", stable, Routes.Stable, 20);
        await AddEndedAsync("p3", stable, Routes.Stable, 30);
        await AddEndedAsync("c1", canary, Routes.Canary, 40);
        await AddEndedAsync("h1", canary, Routes.Shadow, 50, shadowEqual: true);
        await AddEndedAsync("h2", canary, Routes.Shadow, 60, shadowEqual: false);
        await AddEndedAsync("h3", canary, Routes.Shadow, 70, shadowEqual: true);
        await AddEndedAsync("pin", deployed, null, 80);

        var stats = await Store.StatsAsync(null, null, None);

        Assert.Equal([("1.0", false, 3L), ("2.0", false, 1L), (null, false, 1L), ("2.0", true, 3L)], stats.Select(s => (s.AlgorithmVersion, s.Shadow, s.Requests)));
        Assert.Equal((1L, 29.5, 20.0), (stats[0].ColdStarts, stats[0].WarmP95Ms!.Value, stats[0].P50Ms!.Value));
        Assert.Equal((2L, 1L), (stats[3].Equal, stats[3].Different));
        Assert.Equal((0L, 0L), (stats[0].Equal, stats[0].Different));
    }

    [Fact]
    public async Task Stats_since_a_time_count_only_what_started_from_then_on()
    {
        await DeployAsync("win", "1");
        await Store.AddInvocationAsync(Invocation("win", 1, "before", Now.AddMinutes(-10)), None);
        await Store.AddInvocationAsync(Invocation("win", 1, "at", Now), None);
        await Store.AddInvocationAsync(Invocation("win", 1, "after", Now.AddMinutes(1)), None);

        Assert.Equal(3L, Assert.Single(await Store.StatsAsync("win", null, None)).Requests);
        Assert.Equal(2L, Assert.Single(await Store.StatsAsync("win", Now, None)).Requests);
        Assert.Empty(await Store.StatsAsync("win", Now.AddMinutes(2), None));
    }

    [Fact]
    public async Task Prune_keeps_the_newest_and_the_young_and_deletes_at_most_one_batch()
    {
        await DeployAsync("many", "1");
        await AddStartedAsync("many", 1, Enumerable.Range(1, 12_000).Select(g => ("p" + g, Now.AddSeconds(-g))));

        var first = await Store.PruneAsync(new InvocationRetention(1000, TimeSpan.FromDays(30)), Now, None);
        var second = await Store.PruneAsync(new InvocationRetention(1000, TimeSpan.FromDays(30)), Now, None);
        var third = await Store.PruneAsync(new InvocationRetention(1000, TimeSpan.FromDays(30)), Now, None);
        var byAge = await Store.PruneAsync(new InvocationRetention(100_000, TimeSpan.FromSeconds(500)), Now, None);

        Assert.Equal((IFunctionStore.PruneBatch, IFunctionStore.PruneBatch, 1000), (first, second, third));
        Assert.Equal(500, byAge);
        Assert.NotNull(await Store.GetInvocationAsync("p1", None));
        Assert.NotNull(await Store.GetInvocationAsync("p500", None));
        Assert.Null(await Store.GetInvocationAsync("p501", None));
        Assert.Equal(500, Assert.Single(await Store.StatsAsync("many", null, None)).Requests);
    }

    [Fact]
    public async Task Prune_keeps_invocations_that_start_at_the_same_time_as_the_last_one_kept()
    {
        await DeployAsync("ties", "1");
        await Store.AddInvocationAsync(Invocation("ties", 1, "t1", Now), None);
        await Store.AddInvocationAsync(Invocation("ties", 1, "t2", Now), None);
        await Store.AddInvocationAsync(Invocation("ties", 1, "t3", Now), None);
        await Store.AddInvocationAsync(Invocation("ties", 1, "older", Now.AddSeconds(-1)), None);

        Assert.Equal(1, await Store.PruneAsync(new InvocationRetention(1, TimeSpan.FromDays(30)), Now, None));

        Assert.Equal(["t1", "t2", "t3"], (await Store.ListInvocationsAsync("ties", 10, None)).Select(r => r.Id));
    }

    private async Task AddEndedAsync(string id, FunctionVersion servedBy, string? route, double latencyMs, bool coldStart = false, bool? shadowEqual = null)
    {
        await Store.AddInvocationAsync(Invocation(servedBy.Name, servedBy.Version, id, Now) with { ImageDigest = servedBy.ImageDigest, AlgorithmVersion = servedBy.AlgorithmVersion, Route = route }, None);
        await Store.FinishAsync(id, Ended(InvocationStatus.Succeeded, latencyMs) with { ColdStart = coldStart, ShadowEqual = shadowEqual }, Now, None);
    }

    private static FunctionSpec Spec(string name, string command = "cat") =>
        FunctionParser.Parse($"name: {name}\nimage: busybox:1\ncommand: [\"{command}\", \"{{input}}\"]\n", "f.yaml");

    private Task<DeployResult> DeployAsync(string name, string content, string command = "cat", DateTimeOffset? at = null) =>
        Store.DeployAsync(Spec(name, command), "yaml of " + content, "sha256:" + content, content, "tester", at ?? Now, None);

    private static InvocationEnd Ended(InvocationStatus status, double latencyMs) => new(status, 200, null, null, null, null, latencyMs, null, null);

    /// <summary>An invocation as the tests' store records it: in the view's tenant when the tests see one.</summary>
    protected InvocationRecord Invocation(string fn, int version, string id, DateTimeOffset at, InvocationStatus status = InvocationStatus.Running, bool isAsync = false, string caller = "tester") =>
        new(id, fn, version, "sha256:c1", status, isAsync, "in-sha", 7, null, null, null, null, null, null, null, at, null, null, caller) { Tenant = Scope.Tenant ?? TenantId.Default };
}

/// <summary>The contract against the embedded mode's store, a new one per test.</summary>
[Unit]
public sealed class InMemoryFunctionStoreContractTests : FunctionStoreContract
{
    private readonly InMemoryUsageStore _ledger = new();

    private protected override IUsageStore Ledger => _ledger;

    protected override Task<IFunctionStore> CreateStoreAsync() => Task.FromResult<IFunctionStore>(new InMemoryFunctionStore(_ledger));
}

/// <summary>The contract against one tenant's view of the embedded mode's store.</summary>
[Unit]
public sealed class InMemoryTenantViewFunctionStoreContractTests : FunctionStoreContract
{
    private readonly InMemoryUsageStore _ledger = new();

    protected override TenantScope Scope => TenantScope.Of(TenantId.Parse("lab-a", "test"));

    private protected override IUsageStore Ledger => _ledger;

    protected override Task<IFunctionStore> CreateStoreAsync() => Task.FromResult<IFunctionStore>(new InMemoryFunctionStore(_ledger));
}

/// <summary>The contract against one tenant's view of PostgreSQL's store.</summary>
[Integration]
public sealed class PostgresTenantViewFunctionStoreContractTests : PostgresFunctionStoreContractTests
{
    protected override TenantScope Scope => TenantScope.Of(TenantId.Parse("lab-a", "test"));
}

/// <summary>The contract against the real PostgreSQL that scripts/test starts, in a schema of each test's own.</summary>
[Integration]
public class PostgresFunctionStoreContractTests : FunctionStoreContract
{
    private readonly string _schema = TestEnvironment.NewName("fn_");
    private NpgsqlDataSource _db = null!;

    private protected override IUsageStore Ledger => new PostgresUsageStore(_db, _schema);

    protected override async Task<IFunctionStore> CreateStoreAsync()
    {
        _db = await TestEnvironment.PostgresAsync();
        await new PostgresSchema(_db, _schema).CreateAsync(CancellationToken.None);
        return new PostgresFunctionStore(_db, _schema);
    }

    public override async Task DisposeAsync()
    {
        await using (var cmd = _db.CreateCommand($"DROP SCHEMA IF EXISTS {_schema} CASCADE"))
        {
            await cmd.ExecuteNonQueryAsync();
        }

        await _db.DisposeAsync();
    }

    /// <summary>12,000 rows in one statement rather than 12,000 round trips.</summary>
    protected override async Task AddStartedAsync(string function, int version, IEnumerable<(string Id, DateTimeOffset StartedAt)> invocations)
    {
        var list = invocations.ToList();
        await using var cmd = _db.CreateCommand($"""
            INSERT INTO {_schema}.function_invocations (id, function, version, image_digest, status, async, input_bytes, started_at, tenant)
            SELECT id, @fn, @v, 'sha256:c1', 'succeeded', false, 7, started, @tenant FROM unnest(@ids, @starts) AS t(id, started)
            """);
        cmd.Parameters.AddWithValue("tenant", (Scope.Tenant ?? TenantId.Default).Value);
        cmd.Parameters.AddWithValue("fn", function);
        cmd.Parameters.AddWithValue("v", version);
        cmd.Parameters.AddWithValue("ids", list.Select(i => i.Id).ToArray());
        cmd.Parameters.AddWithValue("starts", list.Select(i => i.StartedAt).ToArray());
        await cmd.ExecuteNonQueryAsync();
    }

    [Fact]
    public async Task Setting_up_again_keeps_the_tables_and_their_sql_is_idempotent()
    {
        await Store.DeployAsync(FunctionParser.Parse("name: kept\nimage: busybox:1\ncommand: [cat, \"{input}\"]\n", "f.yaml"), "y", "sha256:k", "k", "tester", Now, CancellationToken.None);

        await new PostgresSchema(_db, _schema).CreateAsync(CancellationToken.None);
        await using (var cmd = _db.CreateCommand(PostgresFunctionStore.SchemaSql(_schema)))
        {
            await cmd.ExecuteNonQueryAsync();
        }

        Assert.NotNull(await Store.GetAsync("kept", null, CancellationToken.None));
    }
}
