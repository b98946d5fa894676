using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using Npgsql;
using Pipelines.Storage;
using Pipelines.Tests.Support;

namespace Pipelines.Tests.EndToEnd;

/// <summary>
/// The distributed mode: runs and jobs in PostgreSQL, inputs and outputs in Swift (S3 API), and
/// the tasks done by two separate `pipelines worker` processes while `pipelines run` only submits
/// and waits. Each test class has its own schemas, so nothing is shared with other tests.
/// </summary>
[Integration]
public sealed class PostgresS3RunTests : IAsyncLifetime
{
    private readonly ObjectStoreFactory _stores = new(TestEnvironment.S3);
    private readonly TempFolder _temp = new();
    private readonly string _schema = TestEnvironment.NewName("e2e_");
    private readonly List<Process> _workers = [];
    private Dictionary<string, string?> _env = null!;
    private string _bucket = null!;

    public async Task InitializeAsync()
    {
        _bucket = await TestEnvironment.NewBucketAsync(_stores.S3Client);
        _env = new()
        {
            ["PIPELINES_POSTGRES"] = TestEnvironment.Postgres,
            ["PIPELINES_Schema"] = _schema,
            ["PIPELINES_Hangfire__Schema"] = _schema + "_hangfire",
            ["PIPELINES_HOME"] = _temp.Combine("home"),
            ["PIPELINES_Worker__Concurrency"] = "2",
        };

        // The sample dataset goes into the bucket as a user's upload would.
        var input = _stores.Open($"s3://{_bucket}/raw/");
        var files = Directory.EnumerateFiles(TestEnvironment.SampleFastq, "*", SearchOption.AllDirectories).ToList();
        await Parallel.ForEachAsync(files, new ParallelOptions { MaxDegreeOfParallelism = 16 }, async (f, ct) =>
            await input.Store.UploadAsync(input.Key(Path.GetRelativePath(TestEnvironment.SampleFastq, f)), f, ct));
    }

    public async Task DisposeAsync()
    {
        foreach (var w in _workers)
        {
            if (!w.HasExited)
            {
                w.Kill(entireProcessTree: true);
            }

            w.Dispose();
        }

        await using var db = NpgsqlDataSource.Create(TestEnvironment.Postgres);
        await using (var cmd = db.CreateCommand($"DROP SCHEMA IF EXISTS {_schema} CASCADE; DROP SCHEMA IF EXISTS {_schema}_hangfire CASCADE"))
        {
            await cmd.ExecuteNonQueryAsync();
        }

        _stores.Dispose();
        _temp.Dispose();
    }

    [Fact]
    public async Task Two_worker_processes_run_the_sample_workflow_from_S3_to_S3()
    {
        // The run command creates the schemas; the workers are started first and must cope.
        _workers.Add(CliRunner.Start(["worker"], _env));
        _workers.Add(CliRunner.Start(["worker"], _env));

        var result = await CliRunner.RunAsync(
            ["run", "workflows/fastq-stats.yaml", "--local-workers", "0",
             "--set", $"input.uri=s3://{_bucket}/raw/", "--set", $"output.uri=s3://{_bucket}/results/", "--set", "input.batch=5"],
            _env, TimeSpan.FromMinutes(5));

        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Contains("PostgreSQL mode, remote workers", result.Stdout, StringComparison.Ordinal);
        var runId = RunFolder.RunIdFrom(result);
        var run = new RunFolder(_stores.Open($"s3://{_bucket}/results/{runId}/"));

        var rows = await run.ResultAsync("stats");
        Assert.Equal(200, rows.Count);
        foreach (var row in rows)
        {
            var expected = FastqReference.Compute(Path.Combine(TestEnvironment.SampleFastq, (string)row["file"]!));
            Assert.Equal(expected.Reads, row["reads"]);
            Assert.Equal(expected.Bases, row["bases"]);
            Assert.Equal(expected.Gc, ((double)row["gc"]!).ToString("F6", CultureInfo.InvariantCulture));
            Assert.Equal(expected.MeanQuality, ((double)row["mean_quality"]!).ToString("F4", CultureInfo.InvariantCulture));
        }

        var provenance = await run.ProvenanceAsync();
        Assert.Equal(40, provenance.Count);
        Assert.All(provenance, p => Assert.Equal("succeeded", p.Status));
        Assert.Equal(2, provenance.Select(p => p.Worker).Distinct().Count());
        foreach (var input in provenance.SelectMany(p => p.Inputs))
        {
            var bytes = await File.ReadAllBytesAsync(Path.Combine(TestEnvironment.SampleFastq, input.Key));
            Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(bytes)), input.Sha256);
        }

        await run.AssertOutputHashesAsync(provenance);
        Assert.True(await run.ExistsAsync("provenance/ro-crate-metadata.json"));
        Assert.True(await run.ExistsAsync("workflow.yaml"));

        var status = await CliRunner.RunAsync(["status", runId], _env);
        Assert.Equal(0, status.ExitCode);
        Assert.Contains($"run {runId} (fastq-stats): succeeded", status.Stdout, StringComparison.Ordinal);
        Assert.Contains("40 succeeded", status.Stdout, StringComparison.Ordinal);

        // SIGTERM stops a worker cleanly.
        foreach (var w in _workers)
        {
            using var kill = Process.Start("kill", ["-TERM", w.Id.ToString(CultureInfo.InvariantCulture)]);
            await kill.WaitForExitAsync();
        }

        foreach (var w in _workers)
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            await w.WaitForExitAsync(cts.Token);
            Assert.Equal(0, w.ExitCode);
        }
    }

    [Fact]
    public async Task A_wrong_credential_is_one_clear_line_and_exit_1_with_nothing_written()
    {
        var env = new Dictionary<string, string?>(_env) { ["AWS_SECRET_ACCESS_KEY"] = "wrong-secret" };
        var result = await CliRunner.RunAsync(
            ["run", "workflows/fastq-stats.yaml", "--set", $"input.uri=s3://{_bucket}/raw/", "--set", $"output.uri=s3://{_bucket}/wrong/"], env);

        Assert.Equal(1, result.ExitCode);
        Assert.Equal($"error: s3://{_bucket}: access denied (SignatureDoesNotMatch): check the S3 credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)", result.Stderr.Trim());
        Assert.DoesNotContain("wrong-secret", result.Stdout + result.Stderr, StringComparison.Ordinal);
        await foreach (var o in _stores.Open($"s3://{_bucket}/wrong/").Store.ListAsync("wrong/", CancellationToken.None))
        {
            Assert.Fail("written: " + o.Key);
        }
    }

    [Fact]
    public async Task A_missing_bucket_is_one_clear_line_and_exit_1_and_an_unreachable_endpoint_exit_5()
    {
        var missing = await CliRunner.RunAsync(
            ["run", "workflows/fastq-stats.yaml", "--set", "input.uri=s3://no-such-bucket-x1/raw/", "--set", $"output.uri=s3://{_bucket}/x/"], _env);
        Assert.Equal(1, missing.ExitCode);
        Assert.Equal("error: s3://no-such-bucket-x1: the bucket does not exist", missing.Stderr.Trim());

        var env = new Dictionary<string, string?>(_env) { ["AWS_ENDPOINT_URL"] = "http://127.0.0.1:9" };
        var unreachable = await CliRunner.RunAsync(
            ["run", "workflows/fastq-stats.yaml", "--set", $"input.uri=s3://{_bucket}/raw/", "--set", $"output.uri=s3://{_bucket}/x/"], env);
        Assert.Equal(5, unreachable.ExitCode);
        Assert.StartsWith($"error: s3://{_bucket}: cannot reach the S3 endpoint http://127.0.0.1:9", unreachable.Stderr.Trim(), StringComparison.Ordinal);
        Assert.DoesNotContain('\n', unreachable.Stderr.Trim());
    }
}
