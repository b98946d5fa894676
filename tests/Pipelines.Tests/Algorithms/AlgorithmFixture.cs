using System.Diagnostics;
using Amazon.S3;
using Docker.DotNet;
using Docker.DotNet.Models;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using Pipelines.Algorithms;
using Pipelines.Containers;
using Pipelines.RunStore;
using Pipelines.Storage;
using Pipelines.Tests.Support;

namespace Pipelines.Tests.Algorithms;

/// <summary>
/// A schema of its own in the real PostgreSQL, a bucket of its own in Swift, and images of its
/// own on the real engine: each built from a sample image with a label no other image has, so
/// removing one (to give a worker an engine that lacks it) never touches an image others use.
/// </summary>
public sealed class AlgorithmFixture : IAsyncDisposable
{
    private readonly List<string> _images = [];

    private AlgorithmFixture(string schema, string bucket, NpgsqlDataSource db, ObjectStoreFactory stores, DockerEngine docker, DockerClient client)
    {
        Schema = schema;
        Bucket = bucket;
        Db = db;
        Stores = stores;
        Docker = docker;
        Client = client;
    }

    public string Schema { get; }

    public string Bucket { get; }

    public string StoreUri => $"s3://{Bucket}/algorithms/";

    public NpgsqlDataSource Db { get; }

    public ObjectStoreFactory Stores { get; }

    public DockerEngine Docker { get; }

    public DockerClient Client { get; }

    public IAmazonS3 S3 => Stores.S3Client;

    public PostgresAlgorithmStore Catalog => new(Db, Schema);

    public static async Task<AlgorithmFixture> CreateAsync()
    {
        var schema = TestEnvironment.NewName("algo_");
        var db = await TestEnvironment.PostgresAsync();
        await new PostgresSchema(db, schema).CreateAsync(CancellationToken.None);
        var stores = new ObjectStoreFactory(TestEnvironment.S3);
        var bucket = await TestEnvironment.NewBucketAsync(stores.S3Client);
        return new AlgorithmFixture(schema, bucket, db, stores, new DockerEngine(new DockerOptions { Endpoint = TestEnvironment.DockerEndpoint }),
            new DockerClientBuilder().WithEndpoint(new Uri(TestEnvironment.DockerEndpoint)).Build());
    }

    public AlgorithmService Service(long maxImageBytes = 1L << 30) => new(
        Catalog, new AlgorithmOptions { Store = StoreUri, MaxImageBytes = maxImageBytes, Scratch = Path.Combine(Path.GetTempPath(), "pipelines-algorithm-tests") },
        Stores, Docker.Images, TimeProvider.System, NullLogger<AlgorithmService>.Instance);

    /// <summary>Builds an image of this test's own (a sample image plus a unique label) and returns its tag.</summary>
    public Task<string> NewImageAsync(string from = "pipelines-samples/pair-check:1") => NewImageAsync(from, new Dictionary<string, string>());

    /// <summary>Builds an image of this test's own from <paramref name="from"/> with executable files added under /bin (name to content).</summary>
    public async Task<string> NewImageAsync(string from, IReadOnlyDictionary<string, string> executables)
    {
        var tag = "pipelines-tests/algorithm-" + Guid.NewGuid().ToString("N")[..12] + ":1";
        var context = Directory.CreateTempSubdirectory("algorithm-image-");
        try
        {
            var dockerfile = new System.Text.StringBuilder($"FROM {from}\n");
            foreach (var (name, content) in executables)
            {
                var path = Path.Combine(context.FullName, name);
                await File.WriteAllTextAsync(path, content);
                File.SetUnixFileMode(path, (UnixFileMode)0b111_101_101);
                dockerfile.Append($"COPY {name} /bin/{name}\n");
            }

            dockerfile.Append($"LABEL org.pipelines.test={tag}\n");
            await File.WriteAllTextAsync(Path.Combine(context.FullName, "Dockerfile"), dockerfile.ToString());
            var psi = new ProcessStartInfo("docker", ["build", "-q", "-t", tag, context.FullName]) { RedirectStandardOutput = true, RedirectStandardError = true };
            psi.Environment["DOCKER_BUILDKIT"] = "0";
            using var p = Process.Start(psi)!;
            var err = p.StandardError.ReadToEndAsync();
            await p.StandardOutput.ReadToEndAsync();
            await p.WaitForExitAsync();
            Assert.True(p.ExitCode == 0, "docker build: " + await err);
        }
        finally
        {
            context.Delete(recursive: true);
        }

        _images.Add(tag);
        return tag;
    }

    public async Task<string> IdOfAsync(string image) => (await Client.Images.InspectImageAsync(image)).ID;

    /// <summary>
    /// Removes an image of this fixture's from the engine (every tag of it: it has only its own),
    /// never its parent: a sample image retagged meanwhile leaves an untagged parent that others may have pinned.
    /// </summary>
    public async Task RemoveImageAsync(string idOrTag)
    {
        try
        {
            await Client.Images.DeleteImageAsync(idOrTag, new ImageDeleteParameters { Force = true, NoPrune = true });
        }
        catch (DockerImageNotFoundException)
        {
            // Gone already.
        }
        catch (DockerApiException e) when (e.StatusCode == System.Net.HttpStatusCode.NotFound)
        {
            // Gone already.
        }
    }

    /// <summary>`docker save` of an image to a file, through the engine API.</summary>
    public async Task<string> SaveAsync(string image, string path)
    {
        await using var file = File.Create(path);
        await Docker.Images.SaveImageAsync(image, file, CancellationToken.None);
        return path;
    }

    public async Task<List<string>> KeysAsync()
    {
        var keys = new List<string>();
        await foreach (var o in Stores.Open($"s3://{Bucket}/").Store.ListAsync("", CancellationToken.None))
        {
            keys.Add(o.Key);
        }

        return keys;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var image in _images)
        {
            await RemoveImageAsync(image);
        }

        await using (var cmd = Db.CreateCommand($"DROP SCHEMA IF EXISTS {Schema} CASCADE; DROP SCHEMA IF EXISTS {Schema}_hangfire CASCADE"))
        {
            await cmd.ExecuteNonQueryAsync();
        }

        await Db.DisposeAsync();
        Docker.Dispose();
        Client.Dispose();
        Stores.Dispose();
    }
}
