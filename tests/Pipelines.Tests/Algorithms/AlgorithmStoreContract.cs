using System.Collections.Concurrent;
using Npgsql;
using Pipelines.Algorithms;
using Pipelines.Hosting;
using Pipelines.RunStore;
using Pipelines.Tenancy;
using Pipelines.Tests.Support;

namespace Pipelines.Tests.Algorithms;

/// <summary>
/// The behaviour of <see cref="IAlgorithmStore"/> that both stores share, run against each of them:
/// versions and their immutability, channels and their history, routes, loads, and the digest
/// lock's rules as what a caller sees (a push and the delete of the digest's last version never
/// interleave; other digests never wait). The object store is a set of digests the callbacks
/// change. Each test has a store of its own.
/// </summary>
public abstract class AlgorithmStoreContract : IAsyncLifetime
{
    private static readonly DateTimeOffset Now = new(2026, 12, 1, 12, 0, 0, TimeSpan.Zero);
    private static readonly CancellationToken None = CancellationToken.None;
    private static readonly TimeSpan Enough = TimeSpan.FromSeconds(30);
    private const int Callers = 8;

    /// <summary>The tarballs "in the object store", by digest.</summary>
    private readonly ConcurrentDictionary<string, int> _tarballs = new(StringComparer.Ordinal);

    protected IAlgorithmStore Store { get; private set; } = null!;

    /// <summary>A second store over the same data, as a second process has; null for a store that is one process's own.</summary>
    protected abstract IAlgorithmStore? Another { get; }

    protected abstract Task<IAlgorithmStore> CreateStoreAsync();

    /// <summary>What the tests see of the store: all of it, or one tenant's view (which must behave the same for its own).</summary>
    protected virtual TenantScope Scope => TenantScope.All;

    /// <summary>The tenant whose records the tests' store makes.</summary>
    private TenantId Tenant => Scope.Tenant ?? TenantId.Default;

    public virtual Task DisposeAsync() => Task.CompletedTask;

    public async Task InitializeAsync() => Store = (await CreateStoreAsync()).For(Scope);

    private IAlgorithmStore? Second => Another?.For(Scope);

    [Fact]
    public async Task A_pushed_version_reads_back_as_given_and_the_first_of_a_name_becomes_stable()
    {
        var v1 = Version("ocr", "1.0", "sha256:a") with { Notes = "first", RepoTags = ["ocr:1.0", "ocr:latest"], LockDown = ["runs as root"] };

        Assert.True(await AddAsync(v1));
        Assert.True(await AddAsync(Version("ocr", "2.0", "sha256:b", at: Now.AddMinutes(1))));

        var read = await Store.GetAsync("ocr", "1.0", None);
        Assert.Equal((v1.Name, v1.Version, v1.Digest, v1.SizeBytes, v1.PushedBy, v1.PushedAt, v1.Notes), (read!.Name, read.Version, read.Digest, read.SizeBytes, read.PushedBy, read.PushedAt, read.Notes));
        Assert.Equal(v1.RepoTags, read.RepoTags);
        Assert.Equal(v1.LockDown, read.LockDown);
        var stable = Assert.Single(await Store.ChannelsAsync("ocr", None));
        Assert.Equal(new AlgorithmChannel("ocr", AlgorithmReference.Stable, "1.0", 100, Now, "tester") { Tenant = Tenant }, stable);
        Assert.Equal(new AlgorithmRoute("ocr", new AlgorithmVersionRef("1.0", "sha256:a"), null, 0, false, null), await Store.RouteAsync("ocr", None));
    }

    [Fact]
    public async Task A_version_is_immutable_a_second_push_records_nothing()
    {
        await AddAsync(Version("ocr", "1.0", "sha256:a"));

        var again = await AddAsync(Version("ocr", "1.0", "sha256:other") with { Notes = "second" });

        Assert.False(again);
        var read = await Store.GetAsync("ocr", "1.0", None);
        Assert.Equal(("sha256:a", (string?)null), (read!.Digest, read.Notes));
        Assert.Single(await Store.ListAsync("ocr", None));
    }

    [Fact]
    public async Task Of_concurrent_pushes_of_one_version_one_records_it()
    {
        var added = await Task.WhenAll(Enumerable.Range(0, Callers).Select(i => Task.Run(() =>
            AddAsync(Version("ocr", "1.0", "sha256:" + i), Second is { } other && i % 2 == 1 ? other : Store))));

        Assert.Single(added, a => a);
        var winner = Array.IndexOf(added, true);
        Assert.Equal("sha256:" + winner, (await Store.GetAsync("ocr", "1.0", None))!.Digest);
        Assert.Equal("1.0", Assert.Single(await Store.ChannelsAsync("ocr", None)).Version);
    }

    [Fact]
    public async Task Versions_are_listed_by_ordinal_name_then_newest_pushed_first_then_by_version()
    {
        await AddAsync(Version("b-algo", "1", "sha256:1"));
        await AddAsync(Version("a1", "1", "sha256:2"));
        await AddAsync(Version("a-z", "old", "sha256:3", at: Now.AddMinutes(-1)));
        await AddAsync(Version("a-z", "b", "sha256:4"));
        await AddAsync(Version("a-z", "B", "sha256:5"));

        Assert.Equal([("a-z", "B"), ("a-z", "b"), ("a-z", "old"), ("a1", "1"), ("b-algo", "1")], (await Store.ListAsync(null, None)).Select(v => (v.Name, v.Version)));
        Assert.Equal(["B", "b", "old"], (await Store.ListAsync("a-z", None)).Select(v => v.Version));
        Assert.Equal(["a-z", "a1", "b-algo"], (await Store.ChannelsAsync(null, None)).Select(c => c.Name));
    }

    [Fact]
    public async Task Reads_and_deletes_of_what_does_not_exist_find_nothing_and_touch_no_tarball()
    {
        await AddAsync(Version("ocr", "1.0", "sha256:a"));

        Assert.Null(await Store.GetAsync("nope", "1.0", None));
        Assert.Null(await Store.GetAsync("ocr", "9.9", None));
        Assert.Empty(await Store.ListAsync("nope", None));
        Assert.Empty(await Store.ChannelsAsync("nope", None));
        Assert.Empty(await Store.EventsAsync("nope", 10, None));
        Assert.Empty(await Store.LoadsAsync("sha256:nope", 10, None));
        Assert.Null(await Store.RouteAsync("nope", None));
        Assert.Null(await Store.DeleteAsync("ocr", "9.9", DeleteTarball, None));
        Assert.Null(await Store.DeleteAsync("nope", "1.0", DeleteTarball, None));
        Assert.True(_tarballs.ContainsKey("sha256:a"));
    }

    [Fact]
    public async Task A_failed_tarball_callback_records_nothing()
    {
        await AddAsync(Version("ocr", "1.0", "sha256:a"));

        await Assert.ThrowsAsync<PipelinesException>(() => Store.AddAsync(Version("ocr", "2.0", "sha256:b"), _ => throw new PipelinesException("S3 is out of reach", retryHelps: true), None));
        await Assert.ThrowsAsync<PipelinesException>(() => Store.SetChannelAsync("ocr", AlgorithmReference.Stable, "2.0", 100, false, "t", Now, null, null, None));
        await Store.SetChannelAsync("ocr", AlgorithmReference.Stable, "1.0", 100, false, "t", Now, null, null, None);
        await AddAsync(Version("ocr", "3.0", "sha256:c"));
        await Assert.ThrowsAsync<PipelinesException>(() => Store.DeleteAsync("ocr", "3.0", (_, _) => throw new PipelinesException("S3 is out of reach", retryHelps: true), None));

        Assert.Null(await Store.GetAsync("ocr", "2.0", None));
        Assert.NotNull(await Store.GetAsync("ocr", "3.0", None));
        Assert.Equal(["1.0", "3.0"], (await Store.ListAsync("ocr", None)).Select(v => v.Version));
    }

    [Fact]
    public async Task Deleting_the_last_version_of_a_digest_removes_its_tarball_and_an_earlier_one_keeps_it()
    {
        await AddAsync(Version("ocr", "1.0", "sha256:stable"));
        await AddAsync(Version("ocr", "2.0", "sha256:shared"));
        await AddAsync(Version("other", "1.0", "sha256:x"));
        await AddAsync(Version("other", "2.0", "sha256:shared"));

        var first = await Store.DeleteAsync("ocr", "2.0", DeleteTarball, None);
        var kept = _tarballs.ContainsKey("sha256:shared");
        var second = await Store.DeleteAsync("other", "2.0", DeleteTarball, None);

        Assert.Equal("sha256:shared", first!.Digest);
        Assert.True(kept);
        Assert.Equal("other", second!.Name);
        Assert.False(_tarballs.ContainsKey("sha256:shared"));
        Assert.Null(await Store.GetAsync("ocr", "2.0", None));
        Assert.Null(await Store.DeleteAsync("ocr", "2.0", DeleteTarball, None));
    }

    [Fact]
    public async Task A_version_a_channel_names_cannot_be_deleted()
    {
        await AddAsync(Version("ocr", "1.0", "sha256:a"));
        await AddAsync(Version("ocr", "2.0", "sha256:b"));
        await Store.SetChannelAsync("ocr", AlgorithmReference.Canary, "2.0", 10, false, "t", Now, null, null, None);
        await Store.SetChannelAsync("ocr", AlgorithmReference.Canary, "1.0", 10, false, "t", Now, null, null, None);

        var stable = await Assert.ThrowsAsync<PipelinesException>(() => Store.DeleteAsync("ocr", "1.0", DeleteTarball, None));

        Assert.Equal("ocr@1.0 is the stable, canary version: promote another version (or abort the canary) before deleting it", stable.Message);
        Assert.False(stable.RetryHelps);
        Assert.NotNull(await Store.GetAsync("ocr", "1.0", None));
        Assert.True(_tarballs.ContainsKey("sha256:a"));
        Assert.NotNull(await Store.DeleteAsync("ocr", "2.0", DeleteTarball, None));
    }

    [Fact]
    public async Task A_channel_names_only_a_pushed_version()
    {
        await AddAsync(Version("ocr", "1.0", "sha256:a"));

        var e = await Assert.ThrowsAsync<PipelinesException>(() => Store.SetChannelAsync("ocr", AlgorithmReference.Canary, "9.9", 10, false, "t", Now, Event("ocr", "9.9"), null, None));

        Assert.Equal("ocr@9.9 does not exist: a channel names a pushed version", e.Message);
        Assert.Single(await Store.ChannelsAsync("ocr", None));
        Assert.Empty(await Store.EventsAsync("ocr", 10, None));
    }

    [Fact]
    public async Task A_canary_is_set_changed_and_ended_with_its_history_and_the_route_follows()
    {
        await AddAsync(Version("ocr", "1.0", "sha256:a"));
        await AddAsync(Version("ocr", "2.0", "sha256:b"));

        Assert.True(await Store.SetChannelAsync("ocr", AlgorithmReference.Canary, "2.0", 10, false, "ann", Now.AddMinutes(1), Event("ocr", "2.0", at: Now.AddMinutes(1)), null, None));
        var canary = await Store.RouteAsync("ocr", None);
        Assert.True(await Store.SetChannelAsync("ocr", AlgorithmReference.Canary, "2.0", 100, true, "bob", Now.AddMinutes(2), Event("ocr", "2.0", ChannelEvent.ShadowAction, Now.AddMinutes(2)), null, None));
        var shadow = await Store.RouteAsync("ocr", None);
        var notThat = await Store.SetChannelAsync("ocr", AlgorithmReference.Canary, null, 0, false, "guard", Now.AddMinutes(3), Event("ocr", "1.0", ChannelEvent.RollbackAction, Now.AddMinutes(3)), onlyIfVersion: "1.0", None);
        var ended = await Store.SetChannelAsync("ocr", AlgorithmReference.Canary, null, 0, false, "guard", Now.AddMinutes(4), Event("ocr", "2.0", ChannelEvent.RollbackAction, Now.AddMinutes(4)), onlyIfVersion: "2.0", None);
        var again = await Store.SetChannelAsync("ocr", AlgorithmReference.Canary, null, 0, false, "ann", Now.AddMinutes(5), Event("ocr", "2.0", ChannelEvent.AbortAction, Now.AddMinutes(5)), null, None);

        Assert.Equal(new AlgorithmRoute("ocr", new("1.0", "sha256:a"), new("2.0", "sha256:b"), 10, false, Now.AddMinutes(1)), canary);
        Assert.Equal(new AlgorithmRoute("ocr", new("1.0", "sha256:a"), new("2.0", "sha256:b"), 100, true, Now.AddMinutes(2)), shadow);
        Assert.Equal((false, true, false), (notThat, ended, again));
        Assert.Equal(new AlgorithmRoute("ocr", new("1.0", "sha256:a"), null, 0, false, null), await Store.RouteAsync("ocr", None));
        Assert.Equal([ChannelEvent.RollbackAction, ChannelEvent.ShadowAction, ChannelEvent.CanaryAction], (await Store.EventsAsync("ocr", 10, None)).Select(e => e.Action));
        Assert.Equal([ChannelEvent.RollbackAction, ChannelEvent.ShadowAction], (await Store.EventsAsync("ocr", 2, None)).Select(e => e.Action));
        Assert.Equal(Event("ocr", "2.0", ChannelEvent.RollbackAction, Now.AddMinutes(4)), (await Store.EventsAsync(null, 1, None))[0]);
    }

    [Fact]
    public async Task Promoting_moves_stable_and_channels_list_stable_before_canary()
    {
        await AddAsync(Version("ocr", "1.0", "sha256:a"));
        await AddAsync(Version("ocr", "2.0", "sha256:b"));
        await Store.SetChannelAsync("ocr", AlgorithmReference.Canary, "2.0", 10, false, "ann", Now, null, null, None);

        await Store.SetChannelAsync("ocr", AlgorithmReference.Stable, "2.0", 100, false, "bob", Now.AddMinutes(1), Event("ocr", "2.0", ChannelEvent.PromoteAction, Now.AddMinutes(1)), null, None);

        Assert.Equal([(AlgorithmReference.Stable, "2.0", "bob"), (AlgorithmReference.Canary, "2.0", "ann")], (await Store.ChannelsAsync("ocr", None)).Select(c => (c.Channel, c.Version, c.UpdatedBy)));
        Assert.Equal("2.0", (await Store.RouteAsync("ocr", None))!.Stable.Version);
    }

    [Fact]
    public async Task Events_with_the_same_time_come_back_in_the_reverse_of_their_recording()
    {
        await AddAsync(Version("ocr", "1.0", "sha256:a"));
        await AddAsync(Version("cv", "1.0", "sha256:c"));

        foreach (var (name, action) in new[] { ("ocr", "canary"), ("cv", "canary"), ("ocr", "promote"), ("ocr", "abort") })
        {
            await Store.SetChannelAsync(name, AlgorithmReference.Canary, "1.0", 5, false, "t", Now, Event(name, "1.0", action, Now), null, None);
        }

        Assert.Equal(["abort", "promote", "canary"], (await Store.EventsAsync("ocr", 10, None)).Select(e => e.Action));
        Assert.Equal([("ocr", "abort"), ("ocr", "promote"), ("cv", "canary"), ("ocr", "canary")], (await Store.EventsAsync(null, 10, None)).Select(e => (e.Name, e.Action)));
    }

    [Fact]
    public async Task Loads_are_kept_per_digest_newest_first()
    {
        await Store.RecordLoadAsync(new ImageLoad("sha256:a", "w1", "s3://b/a.tar", 1.5, 100, Now), None);
        await Store.RecordLoadAsync(new ImageLoad("sha256:b", "w1", "registry.local/b:1", 0.5, 50, Now.AddSeconds(1)), None);
        await Store.RecordLoadAsync(new ImageLoad("sha256:a", "w2", "s3://b/a.tar", 2.5, 100, Now.AddSeconds(2)), None);
        await Store.RecordLoadAsync(new ImageLoad("sha256:a", "w3", "s3://b/a.tar", 3.5, 100, Now.AddSeconds(2)), None);

        Assert.Equal(["w3", "w2", "w1"], (await Store.LoadsAsync("sha256:a", 10, None)).Select(l => l.Worker));
        Assert.Equal(new ImageLoad("sha256:a", "w3", "s3://b/a.tar", 3.5, 100, Now.AddSeconds(2)) { Tenant = Tenant }, (await Store.LoadsAsync("sha256:a", 1, None)).Single());
        Assert.Equal(["sha256:a", "sha256:a", "sha256:b", "sha256:a"], (await Store.LoadsAsync(null, 10, None)).Select(l => l.Digest));
    }

    /// <summary>The lock's first rule: without it, the push would find the tarball there, skip its upload, and lose it to the delete.</summary>
    [Fact]
    public async Task A_push_of_a_digest_while_its_last_version_is_deleted_waits_and_stores_the_tarball_again()
    {
        await AddAsync(Version("ocr", "1.0", "sha256:a"));
        await AddAsync(Version("ocr", "2.0", "sha256:shared"));
        var inDelete = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var letGo = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var deleteDone = false;
        var uploadedAfterDelete = (bool?)null;

        var delete = Store.DeleteAsync("ocr", "2.0", async (digest, ct) =>
        {
            inDelete.SetResult();
            await letGo.Task;
            _tarballs.TryRemove(digest, out _);
            deleteDone = true;
        }, None);
        await inDelete.Task.WaitAsync(Enough);
        var push = (Second ?? Store).AddAsync(Version("other", "1.0", "sha256:shared"), ct =>
        {
            uploadedAfterDelete = deleteDone;
            _tarballs.TryAdd("sha256:shared", 1);
            return Task.CompletedTask;
        }, None);
        var pushWaited = !push.IsCompleted;
        letGo.SetResult();
        await Task.WhenAll(delete, push).WaitAsync(Enough);

        Assert.True(pushWaited);
        Assert.True(uploadedAfterDelete);
        Assert.True(_tarballs.ContainsKey("sha256:shared"));
        Assert.NotNull(await Store.GetAsync("other", "1.0", None));
        Assert.Null(await Store.GetAsync("ocr", "2.0", None));
    }

    [Fact]
    public async Task Pushes_of_one_digest_store_its_tarball_one_at_a_time_and_other_digests_do_not_wait()
    {
        var inFirst = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var letGo = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var secondEntered = false;

        var first = Store.AddAsync(Version("a", "1", "sha256:one"), async ct =>
        {
            inFirst.SetResult();
            await letGo.Task;
        }, None);
        await inFirst.Task.WaitAsync(Enough);
        var second = (Second ?? Store).AddAsync(Version("b", "1", "sha256:one"), ct =>
        {
            secondEntered = true;
            return Task.CompletedTask;
        }, None);
        var elsewhere = await (Second ?? Store).AddAsync(Version("c", "1", "sha256:two"), EnsureTarball("sha256:two"), None).WaitAsync(Enough);
        var enteredWhileHeld = secondEntered;
        letGo.SetResult();
        await Task.WhenAll(first, second).WaitAsync(Enough);

        Assert.True(elsewhere);
        Assert.False(enteredWhileHeld);
        Assert.True(secondEntered);
        Assert.Equal(["a", "b", "c"], (await Store.ListAsync(null, None)).Select(v => v.Name));
    }

    [Fact]
    public async Task A_push_past_the_stored_bytes_quota_is_refused_before_its_tarball_and_an_image_already_kept_counts_once()
    {
        Assert.True(await Store.AddAsync(Version("a", "1", "sha256:one"), EnsureTarball("sha256:one"), None, storedBytes: 2500));
        Assert.True(await Store.AddAsync(Version("a", "2", "sha256:one"), EnsureTarball("sha256:one"), None, storedBytes: 2500));
        Assert.True(await Store.AddAsync(Version("b", "1", "sha256:two"), EnsureTarball("sha256:two"), None, storedBytes: 2500));

        var refused = await Assert.ThrowsAsync<Pipelines.Tenancy.QuotaExceededException>(() =>
            Store.AddAsync(Version("c", "1", "sha256:three"), _ => throw new InvalidOperationException("a refused push must not store its tarball"), None, storedBytes: 2500));

        Assert.Equal("StoredBytes", refused.Quota);
        Assert.Contains("2.4Ki (2,468 bytes)", refused.Message, StringComparison.Ordinal);
        Assert.Null(await Store.GetAsync("c", "1", None));
        Assert.True(await Store.AddAsync(Version("c", "1", "sha256:two"), EnsureTarball("sha256:two"), None, storedBytes: 2500));
    }

    [Fact]
    public async Task Two_pushes_at_once_with_room_for_one_image_are_one_kept_and_one_refused()
    {
        var pushes = new[] { ("a", "sha256:one", Store), ("b", "sha256:two", Second ?? Store) }
            .Select(p => Task.Run(async () =>
            {
                try
                {
                    return await p.Item3.AddAsync(Version(p.Item1, "1", p.Item2), EnsureTarball(p.Item2), None, storedBytes: 2000);
                }
                catch (Pipelines.Tenancy.QuotaExceededException)
                {
                    return false;
                }
            }));

        var kept = await Task.WhenAll(pushes).WaitAsync(Enough);

        Assert.Single(kept, k => k);
        Assert.Single(await Store.ListAsync(null, None));
    }

    private Task<bool> AddAsync(AlgorithmVersion v, IAlgorithmStore? store = null) => (store ?? Store).AddAsync(v, EnsureTarball(v.Digest), None);

    private Func<CancellationToken, Task> EnsureTarball(string digest) => _ =>
    {
        _tarballs.TryAdd(digest, 1);
        return Task.CompletedTask;
    };

    private Task DeleteTarball(string digest, CancellationToken ct)
    {
        _tarballs.TryRemove(digest, out _);
        return Task.CompletedTask;
    }

    private static AlgorithmVersion Version(string name, string version, string digest, DateTimeOffset? at = null) =>
        new(name, version, digest, 1234, "tester", at ?? Now, null, [], []);

    private ChannelEvent Event(string name, string version, string action = ChannelEvent.CanaryAction, DateTimeOffset? at = null) =>
        new(name, action, version, 10, "tester", action == ChannelEvent.RollbackAction ? "p95 over stable's" : null, at ?? Now) { Tenant = Tenant };
}

/// <summary>The contract against the embedded mode's store, a new one per test.</summary>
[Unit]
public sealed class InMemoryAlgorithmStoreContractTests : AlgorithmStoreContract
{
    protected override IAlgorithmStore? Another => null;

    protected override Task<IAlgorithmStore> CreateStoreAsync() => Task.FromResult<IAlgorithmStore>(new InMemoryAlgorithmStore());
}

/// <summary>The contract against one tenant's view of the embedded mode's store.</summary>
[Unit]
public sealed class InMemoryTenantViewAlgorithmStoreContractTests : AlgorithmStoreContract
{
    protected override IAlgorithmStore? Another => null;

    protected override TenantScope Scope => TenantScope.Of(TenantId.Parse("lab-a", "test"));

    protected override Task<IAlgorithmStore> CreateStoreAsync() => Task.FromResult<IAlgorithmStore>(new InMemoryAlgorithmStore());
}

/// <summary>The contract against one tenant's view of PostgreSQL's store, a second process's view beside it.</summary>
[Integration]
public sealed class PostgresTenantViewAlgorithmStoreContractTests : PostgresAlgorithmStoreContractTests
{
    protected override TenantScope Scope => TenantScope.Of(TenantId.Parse("lab-a", "test"));
}

/// <summary>The contract against the real PostgreSQL that scripts/test starts, in a schema of each test's own; a second data source stands for a second process.</summary>
[Integration]
public class PostgresAlgorithmStoreContractTests : AlgorithmStoreContract
{
    private readonly string _schema = TestEnvironment.NewName("alg_");
    private NpgsqlDataSource _db = null!;
    private NpgsqlDataSource _second = null!;

    protected override IAlgorithmStore? Another => new PostgresAlgorithmStore(_second, _schema);

    protected override async Task<IAlgorithmStore> CreateStoreAsync()
    {
        _db = await TestEnvironment.PostgresAsync();
        _second = await TestEnvironment.PostgresAsync();
        await new PostgresSchema(_db, _schema).CreateAsync(CancellationToken.None);
        return new PostgresAlgorithmStore(_db, _schema);
    }

    public override async Task DisposeAsync()
    {
        await using (var cmd = _db.CreateCommand($"DROP SCHEMA IF EXISTS {_schema} CASCADE"))
        {
            await cmd.ExecuteNonQueryAsync();
        }

        await _second.DisposeAsync();
        await _db.DisposeAsync();
    }
}
