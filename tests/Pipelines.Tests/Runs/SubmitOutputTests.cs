using System.Diagnostics;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Npgsql;
using Pipelines.Hosting;
using Pipelines.Runs;
using Pipelines.Storage;
using Pipelines.Tests.Support;

namespace Pipelines.Tests.Runs;

/// <summary>
/// What a submission whose output location cannot be written leaves behind, for a plan made whole
/// (group_by) and a large one that streams into the run store: nothing, in the run store, in
/// Hangfire or in the output location, and one error that names output.uri. Against the real
/// PostgreSQL (run store and Hangfire, schemas of this class's own), Swift and a local folder
/// that even root cannot write into.
/// </summary>
[Integration]
public sealed class SubmitOutputTests : IAsyncLifetime
{
    // Above the listing's chunk (512) and many COPY rows: the streamed path really streams.
    private const int LargeInputs = 3000;

    private readonly TempFolder _temp = new();
    private readonly string _schema = TestEnvironment.NewName("sub_");
    private readonly ObjectStoreFactory _stores = new(TestEnvironment.S3);
    private NpgsqlDataSource _db = null!;
    private IHost _host = null!;
    private string _bucket = null!;

    public enum PlanKind
    {
        /// <summary>group_by over the paired sample reads (*.fastq): planned whole, 98 tasks.</summary>
        Whole,

        /// <summary>3,000 files, one per task: planned while the listing streams.</summary>
        Streamed,
    }

    public enum OutputKind
    {
        /// <summary>A local folder that cannot be written (chattr +i as root, mode 0555 otherwise).</summary>
        ReadOnlyFolder,

        /// <summary>An S3 bucket that does not exist.</summary>
        MissingBucket,
    }

    public async Task InitializeAsync()
    {
        _db = await TestEnvironment.PostgresAsync();
        _bucket = await TestEnvironment.NewBucketAsync(_stores.S3Client);
        var config = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Postgres"] = TestEnvironment.Postgres,
            ["Schema"] = _schema,
            ["Hangfire:Schema"] = _schema + "_hangfire",
        }).Build();

        // No worker: whatever a submission queues stays in Hangfire's tables to be counted.
        _host = EngineHost.Build(config, worker: false);
        await _host.StartAsync();

        var large = _temp.Combine("large");
        Directory.CreateDirectory(large);
        for (var i = 0; i < LargeInputs; i++)
        {
            await File.WriteAllTextAsync(Path.Combine(large, $"r{i:D5}.fastq"), $"@r{i}\nACGT\n+\nIIII\n");
        }
    }

    public async Task DisposeAsync()
    {
        _host.Dispose();
        await using (var cmd = _db.CreateCommand($"DROP SCHEMA IF EXISTS {_schema} CASCADE; DROP SCHEMA IF EXISTS {_schema}_hangfire CASCADE"))
        {
            await cmd.ExecuteNonQueryAsync();
        }

        await _db.DisposeAsync();
        _stores.Dispose();
        _temp.Dispose();
    }

    [Theory]
    [InlineData(PlanKind.Whole, OutputKind.ReadOnlyFolder)]
    [InlineData(PlanKind.Whole, OutputKind.MissingBucket)]
    [InlineData(PlanKind.Streamed, OutputKind.ReadOnlyFolder)]
    [InlineData(PlanKind.Streamed, OutputKind.MissingBucket)]
    public async Task Submit_to_an_output_that_cannot_be_written_is_refused_and_leaves_no_run(PlanKind plan, OutputKind kind)
    {
        var folder = _temp.Combine("locked");
        Directory.CreateDirectory(folder);
        var missing = TestEnvironment.NewName("gone-");
        var output = kind == OutputKind.ReadOnlyFolder ? folder + "/" : $"s3://{missing}/results/";
        var submitter = _host.Services.GetRequiredService<RunSubmitter>();

        PipelinesException e;
        using (kind == OutputKind.ReadOnlyFolder ? Unwritable(folder) : null)
        {
            e = await Assert.ThrowsAsync<PipelinesException>(() => submitter.SubmitAsync(Workflow(plan, output), "submit.yaml", _temp.Path, [], CancellationToken.None));
        }

        Assert.StartsWith($"output.uri {output} cannot be written: ", e.Message, StringComparison.Ordinal);
        if (kind == OutputKind.ReadOnlyFolder)
        {
            Assert.Contains($"cannot create folder {folder}/", e.Message, StringComparison.Ordinal);
        }
        else
        {
            Assert.EndsWith($"s3://{missing}: the bucket does not exist", e.Message, StringComparison.Ordinal);
        }

        Assert.False(e.RetryHelps);
        Assert.Equal((0, 0, 0), await CountAsync());
        if (kind == OutputKind.ReadOnlyFolder)
        {
            Assert.Empty(Directory.EnumerateFileSystemEntries(folder));
        }
        else
        {
            var buckets = await _stores.S3Client.ListBucketsAsync();
            Assert.DoesNotContain(buckets.Buckets ?? [], b => b.BucketName == missing);
        }
    }

    /// <summary>The counts above can see a run: the same submission to a location that can be written keeps all of it.</summary>
    [Theory]
    [InlineData(PlanKind.Whole, 98)]
    [InlineData(PlanKind.Streamed, LargeInputs)]
    public async Task Submit_to_an_output_that_can_be_written_records_queues_and_writes_the_run(PlanKind plan, int tasks)
    {
        var output = $"s3://{_bucket}/results/";

        var run = await _host.Services.GetRequiredService<RunSubmitter>().SubmitAsync(Workflow(plan, output), "submit.yaml", _temp.Path, [], CancellationToken.None);

        Assert.Equal(tasks, run.Tasks);
        Assert.Equal((1, tasks, tasks), await CountAsync());
        var written = _stores.Open(run.OutputUri);
        Assert.NotNull(await written.Store.StatAsync(written.Key("workflow.yaml"), CancellationToken.None));
    }

    private string Workflow(PlanKind plan, string output) => plan == PlanKind.Whole
        ? $"""
            version: 1
            name: whole
            input:
              uri: {TestEnvironment.SampleFastq}/
              include: ["**/*.fastq"]
              group_by: '(?<sample>[^/]+)_R[12]\.fastq$'
            steps:
              - name: stats
                image: pipelines-samples/fastq-stats:1
                command: ["fastq-stats", "--out", "/out/stats.tsv", "{"{inputs}"}"]
            output:
              uri: {output}
            """
        : $"""
            version: 1
            name: streamed
            input:
              uri: {_temp.Combine("large")}/
              include: ["*.fastq"]
            steps:
              - name: stats
                image: pipelines-samples/fastq-stats:1
                command: ["fastq-stats", "--out", "/out/stats.tsv", "{"{inputs}"}"]
            output:
              uri: {output}
            """;

    /// <summary>
    /// Runs, tasks, and the work queued to run in this class's schemas: tasks pending for the
    /// dispatcher (docs/tenants.md, Fair share) plus the jobs it has released into Hangfire.
    /// </summary>
    private async Task<(long Runs, long Tasks, long Queued)> CountAsync()
    {
        await using var cmd = _db.CreateCommand($"SELECT (SELECT count(*) FROM {_schema}.runs), (SELECT count(*) FROM {_schema}.tasks), (SELECT count(*) FROM {_schema}.tasks WHERE state = 'queued' AND released_at IS NULL) + (SELECT count(*) FROM {_schema}_hangfire.job)");
        await using var reader = await cmd.ExecuteReaderAsync();
        await reader.ReadAsync();
        return (reader.GetInt64(0), reader.GetInt64(1), reader.GetInt64(2));
    }

    /// <summary>
    /// A folder nobody can create entries in until disposed. Root passes over mode bits
    /// (CAP_DAC_OVERRIDE), not over the immutable attribute.
    /// </summary>
    private static IDisposable Unwritable(string folder)
    {
        if (Environment.UserName == "root")
        {
            Chattr("+i", folder);
            return new Undo(() => Chattr("-i", folder));
        }

        File.SetUnixFileMode(folder, UnixFileMode.UserRead | UnixFileMode.UserExecute | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
        return new Undo(() => File.SetUnixFileMode(folder, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute));
    }

    private static void Chattr(string change, string folder)
    {
        using var p = Process.Start(new ProcessStartInfo("chattr", [change, folder]) { RedirectStandardError = true })!;
        var error = p.StandardError.ReadToEnd();
        p.WaitForExit();
        Assert.True(p.ExitCode == 0, $"chattr {change} {folder}: {error}");
    }

    private sealed class Undo(Action undo) : IDisposable
    {
        public void Dispose() => undo();
    }
}
