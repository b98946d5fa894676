using Pipelines.Algorithms;
using Pipelines.Containers;
using Pipelines.Tenancy;
using Pipelines.Tests.Support;

namespace Pipelines.Tests.Algorithms;

/// <summary>
/// Algorithms tenant by tenant, against the real PostgreSQL catalog, Swift (S3) and Docker engine:
/// names resolve in the asker's tenant, an image only another tenant pushed is not there for it,
/// and images stay content-addressed (one tarball, kept while any tenant's version names it).
/// </summary>
[Collection("end-to-end")]
[Integration]
public sealed class AlgorithmTenantTests : IAsyncLifetime
{
    private static readonly TenantId LabA = TenantId.Parse("lab-a", "test");
    private static readonly TenantId LabB = TenantId.Parse("lab-b", "test");
    private AlgorithmFixture _f = null!;

    public async Task InitializeAsync() => _f = await AlgorithmFixture.CreateAsync();

    public async Task DisposeAsync() => await _f.DisposeAsync();

    private IContainerRuntime Runtime => new DockerRuntime(_f.Docker);

    [Fact]
    public async Task A_digest_only_another_tenant_pushed_is_for_this_one_an_image_that_is_not_there()
    {
        var service = _f.Service();
        var pushed = await _f.NewImageAsync();
        var digest = await _f.IdOfAsync(pushed);
        await service.For(TenantScope.Of(LabB)).PushLocalImageAsync("seg", "1", pushed, null, "b", CancellationToken.None);
        var missing = "pipelines-tests/no-such-image:" + Guid.NewGuid().ToString("N")[..8];

        var byDigest = await Assert.ThrowsAsync<PipelinesException>(() => AlgorithmService.PinAsync(service, Runtime, digest, LabA, CancellationToken.None));
        var byName = await Assert.ThrowsAsync<PipelinesException>(() => AlgorithmService.PinAsync(service, Runtime, pushed, LabA, CancellationToken.None));
        var absent = await Assert.ThrowsAsync<PipelinesException>(() => AlgorithmService.PinAsync(service, Runtime, missing, LabA, CancellationToken.None));

        // Word for word a missing image's answer: lab-a cannot tell that lab-b has the image.
        Assert.Equal(absent.Message.Replace(missing, digest, StringComparison.Ordinal), byDigest.Message);
        Assert.Equal(absent.Message.Replace(missing, pushed, StringComparison.Ordinal), byName.Message);
        Assert.False(byDigest.RetryHelps);
        Assert.Equal(digest, await AlgorithmService.PinAsync(service, Runtime, digest, LabB, CancellationToken.None));
        Assert.Equal(digest, await AlgorithmService.PinAsync(service, Runtime, "algorithm://seg@stable", LabB, CancellationToken.None));
    }

    [Fact]
    public async Task An_image_no_algorithm_names_is_the_operators_and_runs_for_every_tenant()
    {
        var service = _f.Service();
        var image = await _f.NewImageAsync();

        Assert.Equal(await _f.IdOfAsync(image), await AlgorithmService.PinAsync(service, Runtime, image, LabA, CancellationToken.None));
    }

    [Fact]
    public async Task Algorithm_names_resolve_in_the_askers_tenant_and_another_tenants_name_is_no_algorithm()
    {
        var service = _f.Service();
        var mine = await _f.NewImageAsync();
        var theirs = await _f.NewImageAsync();
        await service.For(TenantScope.Of(LabA)).PushLocalImageAsync("qc", "1", mine, null, "a", CancellationToken.None);
        await service.For(TenantScope.Of(LabB)).PushLocalImageAsync("qc", "1", theirs, null, "b", CancellationToken.None);
        await service.For(TenantScope.Of(LabB)).PushLocalImageAsync("only-b", "1", theirs, null, "b", CancellationToken.None);

        Assert.Equal(await _f.IdOfAsync(mine), await AlgorithmService.PinAsync(service, Runtime, "algorithm://qc@stable", LabA, CancellationToken.None));
        Assert.Equal(await _f.IdOfAsync(theirs), await AlgorithmService.PinAsync(service, Runtime, "algorithm://qc@1", LabB, CancellationToken.None));
        var foreign = await Assert.ThrowsAsync<PipelinesException>(() => AlgorithmService.PinAsync(service, Runtime, "algorithm://only-b@stable", LabA, CancellationToken.None));
        var none = await Assert.ThrowsAsync<PipelinesException>(() => AlgorithmService.PinAsync(service, Runtime, "algorithm://never@stable", LabA, CancellationToken.None));
        Assert.Equal(none.Message.Replace("never", "only-b", StringComparison.Ordinal), foreign.Message);

        var listed = await service.For(TenantScope.Of(LabA)).ListAsync(null, CancellationToken.None);
        Assert.Equal(["qc"], listed.Select(a => a.Name));
        Assert.Equal([LabA], listed.Single().Versions.Select(v => v.Tenant));

        // The whole service (an admin's) lists the two tenants' "qc" apart.
        var all = await service.ListAsync(null, CancellationToken.None);
        Assert.Equal([("only-b", "lab-b"), ("qc", "lab-a"), ("qc", "lab-b")], all.Select(a => (a.Name, a.Tenant.Value)).Order());
    }

    [Fact]
    public async Task One_tarball_serves_every_tenant_already_there_is_told_of_a_tenants_own_and_it_goes_with_the_last_version()
    {
        var service = _f.Service();
        var a = service.For(TenantScope.Of(LabA));
        var b = service.For(TenantScope.Of(LabB));
        var image = await _f.NewImageAsync();
        var key = "algorithms/" + AlgorithmService.TarballKey(await _f.IdOfAsync(image));

        var first = await b.PushLocalImageAsync("seg", "1", image, null, "b", CancellationToken.None);
        var again = await b.PushLocalImageAsync("seg", "2", image, null, "b", CancellationToken.None);
        var other = await a.PushLocalImageAsync("seg", "1", image, null, "a", CancellationToken.None);

        Assert.Equal((false, true, false), (first.TarballWasThere, again.TarballWasThere, other.TarballWasThere));
        Assert.Equal([key], await _f.KeysAsync());

        // lab-b's versions go; lab-a's still names the digest: the tarball stays.
        await b.PromoteAsync("seg", "2", "b", CancellationToken.None);
        Assert.NotNull(await b.DeleteAsync("seg", "1", CancellationToken.None));
        Assert.Null(await a.DeleteAsync("seg", "2", CancellationToken.None));
        Assert.Equal([key], await _f.KeysAsync());

        // The last version of any tenant: the tarball goes with it.
        await a.PushLocalImageAsync("seg", "2", await _f.NewImageAsync(), null, "a", CancellationToken.None);
        await a.PromoteAsync("seg", "2", "a", CancellationToken.None);
        Assert.NotNull(await a.DeleteAsync("seg", "1", CancellationToken.None));
        Assert.Contains(key, await _f.KeysAsync());
        await b.PushLocalImageAsync("seg", "3", await _f.NewImageAsync(), null, "b", CancellationToken.None);
        await b.PromoteAsync("seg", "3", "b", CancellationToken.None);
        Assert.NotNull(await b.DeleteAsync("seg", "2", CancellationToken.None));
        Assert.DoesNotContain(key, await _f.KeysAsync());
    }
}
