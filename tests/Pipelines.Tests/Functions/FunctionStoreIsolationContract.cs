using Npgsql;
using Pipelines.Functions;
using Pipelines.Hosting;
using Pipelines.Tenancy;
using Pipelines.Tests.Support;

namespace Pipelines.Tests.Functions;

/// <summary>
/// Tenants in the function store, against both homes: with lab-b's function deployed and invoked,
/// every verb of lab-a's view answers as it does for a function or invocation that does not exist,
/// and changes nothing of lab-b's; a name is a tenant's, so both may deploy "echo" side by side,
/// each with its own versions, warm containers' owner, figures and retention.
/// </summary>
public abstract class FunctionStoreIsolationContract : IAsyncLifetime
{
    private static readonly DateTimeOffset Now = new(2026, 12, 6, 12, 0, 0, TimeSpan.Zero);
    private static readonly CancellationToken None = CancellationToken.None;
    private static readonly TenantId LabA = TenantId.Parse("lab-a", "test");
    private static readonly TenantId LabB = TenantId.Parse("lab-b", "test");

    protected IFunctionStore Store { get; private set; } = null!;

    protected abstract Task<IFunctionStore> CreateStoreAsync();

    public virtual Task DisposeAsync() => Task.CompletedTask;

    public async Task InitializeAsync() => Store = await CreateStoreAsync();

    private IFunctionStore A => Store.For(TenantScope.Of(LabA));

    private IFunctionStore B => Store.For(TenantScope.Of(LabB));

    /// <summary>Every verb of a view on one function name and one invocation id, as what it answers (a thrown exception as its type and message); the changing verbs last.</summary>
    private static async Task<List<string>> AnswersAsync(IFunctionStore view, string function, string invocation)
    {
        var answers = new List<string>
        {
            $"current {await view.GetAsync(function, null, None)}",
            $"version {await view.GetAsync(function, 1, None)}",
            $"versions {(await view.VersionsAsync(function, None)).Count}",
            $"listed {(await view.ListAsync(None)).Count(f => f.Name == function)}",
            $"invocation {await view.GetInvocationAsync(invocation, None)}",
            $"invocations {(await view.ListInvocationsAsync(function, 100, None)).Count}",
            $"stats {(await view.StatsAsync(function, null, None)).Count} {(await view.StatsAsync(null, null, None)).Count(s => s.Function == function)}",
            $"start {await view.TryStartAsync(invocation, Version(function), "stable", None)}",
            $"finish {await view.FinishAsync(invocation, End(), Now, None)}",
            $"ended {await view.AddEndedAsync([new EndedInvocation(Invocation(function, "new-" + invocation), End(), Now)], None)}",
            $"pruned {await view.PruneAsync(new InvocationRetention(0, TimeSpan.Zero), Now.AddDays(1), None)}",
            await ThrownAsync(() => view.AddInvocationAsync(Invocation(function, "added-" + invocation), None)),
            $"deleted {string.Join(",", await view.DeleteAsync(function, None))}",
        };
        return answers;
    }

    private static async Task<string> ThrownAsync(Func<Task> act)
    {
        try
        {
            await act();
            return "no exception";
        }
        catch (UnknownFunctionException e)
        {
            return $"{e.GetType().Name}: {e.Message.Replace(e.Name, "NAME", StringComparison.Ordinal)}";
        }
    }

    [Fact]
    public async Task Every_verb_of_a_view_answers_for_another_tenants_function_as_for_a_missing_one_and_changes_nothing()
    {
        await SetUpAsync(B, "echo", "inv-b");
        var before = await SnapshotAsync(B, "echo", "inv-b");

        var onTheirs = await AnswersAsync(A, "echo", "inv-b");
        var onMissing = await AnswersAsync(A, "nope", "inv-none");

        Assert.Equal(onMissing, onTheirs.Select(a => a.Replace("inv-b", "inv-none", StringComparison.Ordinal)));
        Assert.Equal(before, await SnapshotAsync(B, "echo", "inv-b"));
    }

    [Fact]
    public async Task Two_tenants_deploy_the_same_name_with_their_own_versions_owners_figures_and_retention()
    {
        await SetUpAsync(B, "echo", "inv-b");
        var a1 = await A.DeployAsync(Spec("echo"), "y", "sha256:a", "content-a", "alice", Now, None);
        await A.AddInvocationAsync(Invocation("echo", "inv-a") with { StartedAt = Now.AddDays(-40) }, None);

        Assert.Equal((1, true, LabA), (a1.Function.Version, a1.Created, a1.Function.Tenant));
        Assert.Equal((2, LabB), ((await B.GetAsync("echo", null, None))!.Version, (await B.GetAsync("echo", null, None))!.Tenant));
        Assert.Equal(("function:lab-a/echo@1", "function:lab-b/echo@1"), (a1.Function.Owner, (await B.GetAsync("echo", 1, None))!.Owner));
        Assert.Equal("function:echo@1", (Version("echo") with { Tenant = TenantId.Default }).Owner);
        Assert.Equal([LabA], (await A.StatsAsync("echo", null, None)).Select(s => s.Tenant).Distinct());
        Assert.Equal(["inv-a"], (await A.ListInvocationsAsync("echo", 10, None)).Select(i => i.Id));
        Assert.Equal(LabA, (await A.GetInvocationAsync("inv-a", None))!.Tenant);

        // Invocation ids are the engine's, unique across tenants.
        await Assert.ThrowsAsync<ArgumentException>(() => A.AddInvocationAsync(Invocation("echo", "inv-b"), None));

        // A view's retention reaches only its own: lab-a's old invocation goes, lab-b's stay.
        Assert.Equal(1, await A.PruneAsync(new InvocationRetention(0, TimeSpan.FromDays(30)), Now, None));
        Assert.Equal(2, (await B.ListInvocationsAsync("echo", 10, None)).Count);
        Assert.Equal([1], await A.DeleteAsync("echo", None));
        Assert.Equal(2, (await B.GetAsync("echo", null, None))!.Version);
    }

    [Fact]
    public async Task The_whole_store_lists_every_tenants_functions_and_figures_and_names_the_default_tenants()
    {
        await SetUpAsync(B, "echo", "inv-b");
        await A.DeployAsync(Spec("echo"), "y", "sha256:a", "content-a", "alice", Now, None);
        await Store.DeployAsync(Spec("echo"), "y", "sha256:d", "content-d", "op", Now, None);

        Assert.Equal([TenantId.Default, LabA, LabB], (await Store.ListAsync(None)).Select(f => f.Tenant));
        Assert.Equal([LabA], (await A.ListAsync(None)).Select(f => f.Tenant));
        Assert.Equal(["sha256:d"], (await Store.VersionsAsync("echo", None)).Select(v => v.ImageDigest));
        Assert.Equal([LabB], (await Store.StatsAsync(null, null, None)).Select(s => s.Tenant).Distinct());
        Assert.Empty(await Store.StatsAsync("echo", null, None));
        Assert.Equal(LabB, (await Store.GetInvocationAsync("inv-b", None))!.Tenant);

        // The engine records an invocation in the tenant the record names.
        await Store.AddInvocationAsync(Invocation("echo", "inv-engine") with { Tenant = LabA }, None);
        Assert.Equal(["inv-engine"], (await A.ListInvocationsAsync("echo", 10, None)).Select(i => i.Id));
    }

    [Fact]
    public void A_view_is_itself_for_its_tenant_or_all_and_cannot_be_widened_to_another_tenant()
    {
        var a = A;

        Assert.Same(Store, Store.For(TenantScope.All));
        Assert.Same(a, a.For(TenantScope.All));
        Assert.Same(a, a.For(TenantScope.Of(LabA)));
        Assert.Throws<InvalidOperationException>(() => a.For(TenantScope.Of(LabB)));
    }

    /// <summary>Two versions, a running invocation and an ended one.</summary>
    private static async Task SetUpAsync(IFunctionStore view, string function, string invocation)
    {
        await view.DeployAsync(Spec(function), "y1", "sha256:b1", "content-1", "bob", Now, None);
        await view.DeployAsync(Spec(function), "y2", "sha256:b2", "content-2", "bob", Now, None);
        await view.AddInvocationAsync(Invocation(function, invocation), None);
        await view.AddEndedAsync([new EndedInvocation(Invocation(function, invocation + "-ended"), End(), Now)], None);
    }

    private static async Task<string> SnapshotAsync(IFunctionStore view, string function, string invocation) => string.Join(
        " | ",
        await view.GetAsync(function, null, None) is { } f ? $"{f.Name}@{f.Version} {f.ImageDigest} {f.Tenant}" : "none",
        string.Join(",", (await view.VersionsAsync(function, None)).Select(v => v.Version)),
        await view.GetInvocationAsync(invocation, None),
        string.Join(",", await view.ListInvocationsAsync(function, 100, None)),
        string.Join(",", await view.StatsAsync(null, null, None)));

    private static FunctionSpec Spec(string name) =>
        FunctionParser.Parse($"name: {name}\nimage: busybox:1\ncommand: [cat, \"{{input}}\"]\n", "f.yaml");

    private static FunctionVersion Version(string name) => new(name, 1, Spec(name), "sha256:x", "y", "c", Now, "t");

    private static InvocationRecord Invocation(string function, string id) =>
        new(id, function, 1, "sha256:b1", InvocationStatus.Running, false, "in-sha", 7, null, null, null, null, null, null, null, Now, null, null, "tester");

    private static InvocationEnd End() => new(InvocationStatus.Succeeded, 200, null, null, null, null, 12.5, null, null);
}

/// <summary>Tenants in the embedded mode's function store.</summary>
[Unit]
public sealed class InMemoryFunctionStoreIsolationTests : FunctionStoreIsolationContract
{
    protected override Task<IFunctionStore> CreateStoreAsync() => Task.FromResult<IFunctionStore>(new InMemoryFunctionStore());
}

/// <summary>Tenants in PostgreSQL's function store, in a schema of each test's own.</summary>
[Integration]
public sealed class PostgresFunctionStoreIsolationTests : FunctionStoreIsolationContract
{
    private readonly string _schema = TestEnvironment.NewName("fni_");
    private NpgsqlDataSource _db = null!;

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
}
