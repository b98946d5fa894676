using Amazon.S3;
using Docker.DotNet;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using Pipelines.Algorithms;
using Pipelines.Containers;
using Pipelines.Hosting;
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
    private AlgorithmFixture(string schema, string bucket, NpgsqlDataSource db, ObjectStoreFactory stores, DockerEngine docker)
    {
        Schema = schema;
        Bucket = bucket;
        Db = db;
        Stores = stores;
        Docker = docker;
    }

    public string Schema { get; }

    public string Bucket { get; }

    public string StoreUri => $"s3://{Bucket}/algorithms/";

    public NpgsqlDataSource Db { get; }

    public ObjectStoreFactory Stores { get; }

    public DockerEngine Docker { get; }

    public DockerClient Client => Images.Client;

    public IAmazonS3 S3 => Stores.S3Client;

    /// <summary>The images of this fixture's own, removed when it is disposed.</summary>
    public TestImages Images { get; } = new();

    public IAlgorithmStore Catalog => new PostgresAlgorithmStore(Db, Schema);

    public static async Task<AlgorithmFixture> CreateAsync()
    {
        var schema = TestEnvironment.NewName("algo_");
        var db = await TestEnvironment.PostgresAsync();
        await new PostgresSchema(db, schema).CreateAsync(CancellationToken.None);
        var stores = new ObjectStoreFactory(TestEnvironment.S3);
        var bucket = await TestEnvironment.NewBucketAsync(stores.S3Client);
        return new AlgorithmFixture(schema, bucket, db, stores, new DockerEngine(new DockerOptions { Endpoint = TestEnvironment.DockerEndpoint }));
    }

    public AlgorithmService Service(long maxImageBytes = 1L << 30) => new(
        Catalog, new AlgorithmOptions { Store = StoreUri, MaxImageBytes = maxImageBytes, Scratch = Path.Combine(Path.GetTempPath(), "pipelines-algorithm-tests") },
        Stores, Docker.Images, TimeProvider.System, NullLogger<AlgorithmService>.Instance);

    /// <summary>Builds an image of this test's own (a sample image plus a unique label) and returns its tag.</summary>
    public Task<string> NewImageAsync(string from = "pipelines-samples/pair-check:1") => Images.NewAsync(from);

    /// <summary>Builds an image of this test's own from <paramref name="from"/> with executable files added under /bin (name to content).</summary>
    public Task<string> NewImageAsync(string from, IReadOnlyDictionary<string, string> executables) => Images.NewAsync(from, executables);

    public Task<string> IdOfAsync(string image) => Images.IdOfAsync(image);

    /// <summary>Removes an image of this fixture's from the engine (<see cref="TestImages.RemoveAsync"/>).</summary>
    public Task RemoveImageAsync(string idOrTag) => Images.RemoveAsync(idOrTag);

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
        await Images.DisposeAsync();

        await using (var cmd = Db.CreateCommand($"DROP SCHEMA IF EXISTS {Schema} CASCADE; DROP SCHEMA IF EXISTS {Schema}_hangfire CASCADE"))
        {
            await cmd.ExecuteNonQueryAsync();
        }

        await Db.DisposeAsync();
        Docker.Dispose();
        Stores.Dispose();
    }
}
