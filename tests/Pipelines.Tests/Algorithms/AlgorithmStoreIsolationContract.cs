using Npgsql;
using Pipelines.Algorithms;
using Pipelines.Hosting;
using Pipelines.Tenancy;
using Pipelines.Tests.Support;

namespace Pipelines.Tests.Algorithms;

/// <summary>
/// Tenants in the algorithm catalog, against both homes: with lab-b's algorithm pushed, with a
/// canary, events and a load, every verb of lab-a's view answers as it does for an algorithm that
/// does not exist, and changes nothing of lab-b's; a name is a tenant's, so both may push "ocr"
/// side by side; images stay content-addressed, so a tarball goes only with the last version of
/// its digest in any tenant.
/// </summary>
public abstract class AlgorithmStoreIsolationContract : IAsyncLifetime
{
    private static readonly DateTimeOffset Now = new(2026, 12, 6, 12, 0, 0, TimeSpan.Zero);
    private static readonly CancellationToken None = CancellationToken.None;
    private static readonly TenantId LabA = TenantId.Parse("lab-a", "test");
    private static readonly TenantId LabB = TenantId.Parse("lab-b", "test");

    private readonly List<string> _deletedTarballs = [];

    protected IAlgorithmStore Store { get; private set; } = null!;

    protected abstract Task<IAlgorithmStore> CreateStoreAsync();

    public virtual Task DisposeAsync() => Task.CompletedTask;

    public async Task InitializeAsync() => Store = await CreateStoreAsync();

    private IAlgorithmStore A => Store.For(TenantScope.Of(LabA));

    private IAlgorithmStore B => Store.For(TenantScope.Of(LabB));

    /// <summary>Every verb of a view on one algorithm name, as what it answers (a refusal as its message with the name replaced); the changing verbs last.</summary>
    private async Task<List<string>> AnswersAsync(IAlgorithmStore view, string name)
    {
        var answers = new List<string>
        {
            $"get {await view.GetAsync(name, "1.0", None)}",
            $"list {(await view.ListAsync(name, None)).Count} {(await view.ListAsync(null, None)).Count(v => v.Name == name)}",
            $"channels {(await view.ChannelsAsync(name, None)).Count} {(await view.ChannelsAsync(null, None)).Count(c => c.Name == name)}",
            $"events {(await view.EventsAsync(name, 10, None)).Count} {(await view.EventsAsync(null, 10, None)).Count(e => e.Name == name)}",
            $"loads {(await view.LoadsAsync("sha256:b1", 10, None)).Count}",
            $"route {await view.RouteAsync(name, None)}",
            $"abort {await view.SetChannelAsync(name, AlgorithmReference.Canary, null, 0, false, "guard", Now, null, onlyIfVersion: null, None)}",
            await RefusedAsync(name, () => view.SetChannelAsync(name, AlgorithmReference.Canary, "1.0", 10, false, "eve", Now, null, null, None)),
            $"delete {await view.DeleteAsync(name, "2.0", DeleteTarballAsync, None)}",
        };
        return answers;
    }

    private static async Task<string> RefusedAsync(string name, Func<Task> act)
    {
        try
        {
            await act();
            return "no exception";
        }
        catch (PipelinesException e)
        {
            return $"{e.GetType().Name}: {e.Message.Replace(name, "NAME", StringComparison.Ordinal)}";
        }
    }

    [Fact]
    public async Task Every_verb_of_a_view_answers_for_another_tenants_algorithm_as_for_a_missing_one_and_changes_nothing()
    {
        await SetUpAsync(B, "ocr");
        var before = await SnapshotAsync(B, "ocr");

        var onTheirs = await AnswersAsync(A, "ocr");
        var onMissing = await AnswersAsync(A, "nope");

        Assert.Equal(onMissing, onTheirs);
        Assert.Equal(before, await SnapshotAsync(B, "ocr"));
        Assert.Empty(_deletedTarballs);
    }

    [Fact]
    public async Task Two_tenants_push_the_same_name_and_digest_and_the_tarball_goes_only_with_the_last_version_of_either()
    {
        Assert.True(await A.AddAsync(Version("ocr", "1.0", "sha256:shared"), _ => Task.CompletedTask, None));
        Assert.True(await B.AddAsync(Version("ocr", "1.0", "sha256:shared"), _ => Task.CompletedTask, None));
        Assert.True(await B.AddAsync(Version("ocr", "2.0", "sha256:b2"), _ => Task.CompletedTask, None));
        await B.SetChannelAsync("ocr", AlgorithmReference.Stable, "2.0", 100, false, "bob", Now, null, null, None);

        Assert.Equal(("sha256:shared", LabA), ((await A.RouteAsync("ocr", None))!.Stable.Digest, (await A.GetAsync("ocr", "1.0", None))!.Tenant));
        Assert.Equal("sha256:b2", (await B.RouteAsync("ocr", None))!.Stable.Digest);
        Assert.Equal([LabA], (await A.ChannelsAsync(null, None)).Select(c => c.Tenant));

        Assert.NotNull(await B.DeleteAsync("ocr", "1.0", DeleteTarballAsync, None));
        Assert.Empty(_deletedTarballs);
        Assert.NotNull(await A.GetAsync("ocr", "1.0", None));

        await A.SetChannelAsync("ocr", AlgorithmReference.Stable, null, 0, false, "alice", Now, null, null, None);
        Assert.NotNull(await A.DeleteAsync("ocr", "1.0", DeleteTarballAsync, None));
        Assert.Equal(["sha256:shared"], _deletedTarballs);
    }

    [Fact]
    public async Task A_view_stamps_its_tenant_and_the_whole_store_lists_every_tenants()
    {
        await SetUpAsync(B, "ocr");
        await A.AddAsync(Version("ocr", "1.0", "sha256:a1") with { Tenant = LabB }, _ => Task.CompletedTask, None);
        await A.RecordLoadAsync(new ImageLoad("sha256:a1", "w1", "s3://x", 1, 1, Now) { Tenant = LabB }, None);
        await Store.AddAsync(Version("ocr", "1.0", "sha256:d1"), _ => Task.CompletedTask, None);

        Assert.Equal([LabA], (await A.ListAsync(null, None)).Select(v => v.Tenant));
        Assert.Equal([LabA], (await A.LoadsAsync(null, 10, None)).Select(l => l.Tenant));
        Assert.Equal([TenantId.Default, LabA, LabB, LabB], (await Store.ListAsync(null, None)).Select(v => v.Tenant));
        Assert.Equal([LabB], (await Store.EventsAsync(null, 10, None)).Select(e => e.Tenant).Distinct());
        Assert.Equal(2, (await Store.LoadsAsync(null, 10, None)).Count);

        // The whole store names algorithms in the default tenant.
        Assert.Equal(["sha256:d1"], (await Store.ListAsync("ocr", None)).Select(v => v.Digest));
        Assert.Equal("sha256:d1", (await Store.RouteAsync("ocr", None))!.Stable.Digest);
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

    /// <summary>Two versions, a canary with its event, and a load.</summary>
    private static async Task SetUpAsync(IAlgorithmStore view, string name)
    {
        await view.AddAsync(Version(name, "1.0", "sha256:b1"), _ => Task.CompletedTask, None);
        await view.AddAsync(Version(name, "2.0", "sha256:b2"), _ => Task.CompletedTask, None);
        await view.SetChannelAsync(name, AlgorithmReference.Canary, "2.0", 10, false, "bob", Now, new ChannelEvent(name, ChannelEvent.CanaryAction, "2.0", 10, "bob", null, Now), null, None);
        await view.RecordLoadAsync(new ImageLoad("sha256:b1", "w1", "s3://b/b1.tar", 1.5, 100, Now), None);
    }

    private static async Task<string> SnapshotAsync(IAlgorithmStore view, string name) => string.Join(
        " | ",
        string.Join(",", (await view.ListAsync(name, None)).Select(v => $"{v.Version} {v.Digest} {v.Tenant}")),
        string.Join(",", await view.ChannelsAsync(name, None)),
        string.Join(",", await view.EventsAsync(name, 10, None)),
        string.Join(",", await view.LoadsAsync(null, 10, None)),
        await view.RouteAsync(name, None));

    private Task DeleteTarballAsync(string digest, CancellationToken ct)
    {
        lock (_deletedTarballs)
        {
            _deletedTarballs.Add(digest);
        }

        return Task.CompletedTask;
    }

    private static AlgorithmVersion Version(string name, string version, string digest) => new(name, version, digest, 1234, "tester", Now, null, [], []);
}

/// <summary>Tenants in the embedded mode's algorithm catalog.</summary>
[Unit]
public sealed class InMemoryAlgorithmStoreIsolationTests : AlgorithmStoreIsolationContract
{
    protected override Task<IAlgorithmStore> CreateStoreAsync() => Task.FromResult<IAlgorithmStore>(new InMemoryAlgorithmStore());
}

/// <summary>Tenants in PostgreSQL's algorithm catalog, in a schema of each test's own.</summary>
[Integration]
public sealed class PostgresAlgorithmStoreIsolationTests : AlgorithmStoreIsolationContract
{
    private readonly string _schema = TestEnvironment.NewName("algi_");
    private NpgsqlDataSource _db = null!;

    protected override async Task<IAlgorithmStore> CreateStoreAsync()
    {
        _db = await TestEnvironment.PostgresAsync();
        await new PostgresSchema(_db, _schema).CreateAsync(CancellationToken.None);
        return new PostgresAlgorithmStore(_db, _schema);
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
