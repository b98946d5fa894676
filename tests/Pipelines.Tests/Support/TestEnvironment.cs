using Amazon.S3;
using Amazon.S3.Model;
using Npgsql;
using Pipelines.Storage;

namespace Pipelines.Tests.Support;

/// <summary>
/// The real services the suite runs against, started by scripts/test (scripts/services start).
/// A missing service is a failure, never a skip.
/// </summary>
public static class TestEnvironment
{
    public static string RepoRoot { get; } = FindRoot();

    public static string Postgres => Require("PIPELINES_POSTGRES");

    public static string S3Endpoint => Require("AWS_ENDPOINT_URL");

    public static S3Settings S3 => new(S3Endpoint, Require("AWS_ACCESS_KEY_ID"), Require("AWS_SECRET_ACCESS_KEY"), Environment.GetEnvironmentVariable("AWS_REGION") ?? "us-east-1");

    public static string DockerEndpoint
    {
        get
        {
            TestLane.Refuse("the Docker engine");
            return Environment.GetEnvironmentVariable("DOCKER_HOST") ?? "unix:///var/run/docker.sock";
        }
    }

    public static string SampleFastq => Path.Combine(RepoRoot, "sample-data", "fastq");

    public static string Require(string name)
    {
        TestLane.Refuse("a service (" + name + ")");
        return Environment.GetEnvironmentVariable(name) is { Length: > 0 } v
            ? v
            : throw new InvalidOperationException($"{name} is not set: run the suite with scripts/test, which starts PostgreSQL, Docker and Swift and sets it");
    }

    public static string NewName(string prefix) => $"{prefix}{Guid.NewGuid():N}"[..(prefix.Length + 12)];

    public static async Task<string> NewBucketAsync(IAmazonS3 client)
    {
        var bucket = NewName("t-");
        await client.PutBucketAsync(new PutBucketRequest { BucketName = bucket });
        return bucket;
    }

    public static async Task<NpgsqlDataSource> PostgresAsync()
    {
        var ds = NpgsqlDataSource.Create(Postgres);
        await using var cmd = ds.CreateCommand("SELECT 1");
        await cmd.ExecuteScalarAsync();
        return ds;
    }

    private static string FindRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Pipelines.sln")))
        {
            dir = dir.Parent;
        }

        return dir?.FullName ?? throw new InvalidOperationException("cannot find the repository root (Pipelines.sln) above " + AppContext.BaseDirectory);
    }
}
