using System.Formats.Tar;
using Pipelines.Algorithms;
using Pipelines.Tests.Support;

namespace Pipelines.Tests.Algorithms;

/// <summary>Push, list, delete and the checks at push, against the real PostgreSQL, Swift (S3) and Docker engine.</summary>
[Integration]
public sealed class AlgorithmPushTests : IAsyncLifetime
{
    private readonly TempFolder _temp = new();
    private AlgorithmFixture _f = null!;

    public async Task InitializeAsync() => _f = await AlgorithmFixture.CreateAsync();

    public async Task DisposeAsync()
    {
        await _f.DisposeAsync();
        _temp.Dispose();
    }

    [Fact]
    public async Task Push_keeps_the_image_in_the_store_by_digest_list_shows_it_and_delete_removes_it()
    {
        var service = _f.Service();
        var image = await _f.NewImageAsync();
        var id = await _f.IdOfAsync(image);

        var first = await service.PushLocalImageAsync("qc", "1.0", image, "first cut", "tester", CancellationToken.None);
        Assert.Equal(id, first.Version.Digest);
        Assert.True(first.IsStable);
        Assert.False(first.TarballWasThere);
        var key = "algorithms/" + AlgorithmService.TarballKey(id);
        Assert.Equal([key], await _f.KeysAsync());
        Assert.Equal(first.Version.SizeBytes, (await _f.S3.GetObjectMetadataAsync(_f.Bucket, key)).ContentLength);
        Assert.Contains(image, first.Version.RepoTags);

        // The same image as a tarball file, as a second version: one object, two versions.
        var tar = await _f.SaveAsync(image, _temp.Combine("qc.tar"));
        await using (var body = File.OpenRead(tar))
        {
            var second = await service.PushAsync("qc", "1.1", body, id, null, "tester", CancellationToken.None);
            Assert.True(second.TarballWasThere);
            Assert.False(second.IsStable);
        }

        // A version is immutable.
        await using (var again = File.OpenRead(tar))
        {
            var e = await Assert.ThrowsAsync<PipelinesException>(() => service.PushAsync("qc", "1.1", again, null, null, "tester", CancellationToken.None));
            Assert.Contains("qc@1.1 was pushed already", e.Message, StringComparison.Ordinal);
        }

        var other = await _f.NewImageAsync();
        var third = await service.PushLocalImageAsync("qc", "2.0", other, null, "tester", CancellationToken.None);
        Assert.Equal(2, (await _f.KeysAsync()).Count);

        var listed = Assert.Single(await service.ListAsync(null, CancellationToken.None));
        Assert.Equal(["1.0", "1.1", "2.0"], listed.Versions.Select(v => v.Version).Order(StringComparer.Ordinal));
        Assert.Equal("1.0", Assert.Single(listed.Channels).Version);
        Assert.Equal("first cut", listed.Versions.Single(v => v.Version == "1.0").Notes);
        Assert.Equal("tester", listed.Versions.Single(v => v.Version == "2.0").PushedBy);

        // Channels resolve to the pinned digest; the stable version cannot be deleted.
        Assert.Equal(id, (await service.ResolveAsync("algorithm://qc@stable", CancellationToken.None)).Digest);
        await service.CanaryAsync("qc", "2.0", 10, "tester", CancellationToken.None);
        Assert.Equal(third.Version.Digest, (await service.ResolveAsync("algorithm://qc@canary", CancellationToken.None)).Digest);
        var stable = await Assert.ThrowsAsync<PipelinesException>(() => service.DeleteAsync("qc", "1.0", CancellationToken.None));
        Assert.Contains("is the stable version", stable.Message, StringComparison.Ordinal);
        var unknown = await Assert.ThrowsAsync<PipelinesException>(() => service.ResolveAsync("algorithm://qc@9", CancellationToken.None));
        Assert.Contains("has no version 9", unknown.Message, StringComparison.Ordinal);

        // 1.1 goes, its image stays (1.0 has it); 2.0 goes once the canary ends, and its image with it.
        Assert.NotNull(await service.DeleteAsync("qc", "1.1", CancellationToken.None));
        Assert.Equal(2, (await _f.KeysAsync()).Count);
        await service.AbortCanaryAsync("qc", "tester", CancellationToken.None);
        Assert.NotNull(await service.DeleteAsync("qc", "2.0", CancellationToken.None));
        Assert.Equal([key], await _f.KeysAsync());
        Assert.Null(await service.DeleteAsync("qc", "2.0", CancellationToken.None));
        Assert.Equal(["1.0"], (await service.ListAsync("qc", CancellationToken.None)).Single().Versions.Select(v => v.Version));
    }

    [Fact]
    public async Task A_tarball_that_is_not_an_image_or_too_big_or_of_another_digest_is_refused_and_nothing_is_stored()
    {
        var service = _f.Service();
        var text = _temp.Write("notes.txt", new string('x', 5000));
        var noManifest = _temp.Combine("plain.tar");
        await using (var file = File.Create(noManifest))
        await using (var tar = new TarWriter(file))
        {
            await tar.WriteEntryAsync(text, "notes.txt");
        }

        var image = await _f.NewImageAsync();
        var real = await _f.SaveAsync(image, _temp.Combine("real.tar"));

        async Task<string> RefusedAsync(AlgorithmService s, string path, string? digest = null)
        {
            await using var body = File.OpenRead(path);
            return (await Assert.ThrowsAsync<PipelinesException>(() => s.PushAsync("bad", "1", body, digest, null, "tester", CancellationToken.None))).Message;
        }

        Assert.Contains("is not a tar archive", await RefusedAsync(service, text), StringComparison.Ordinal);
        Assert.Contains("has no manifest.json", await RefusedAsync(service, noManifest), StringComparison.Ordinal);
        Assert.Contains("not sha256:" + new string('0', 64) + " as expected", await RefusedAsync(service, real, "sha256:" + new string('0', 64)), StringComparison.Ordinal);
        Assert.Contains("over the limit of 100000 bytes (Algorithms:MaxImageBytes)", await RefusedAsync(_f.Service(maxImageBytes: 100_000), real), StringComparison.Ordinal);
        foreach (var message in new[] { await RefusedAsync(service, text), await RefusedAsync(service, noManifest) })
        {
            Assert.EndsWith("nothing was stored", message, StringComparison.Ordinal);
        }

        Assert.Empty(await _f.KeysAsync());
        Assert.Empty(await service.ListAsync(null, CancellationToken.None));
    }
}
