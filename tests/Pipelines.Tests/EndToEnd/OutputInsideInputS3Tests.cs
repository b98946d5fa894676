using Pipelines.Storage;
using Pipelines.Tests.Support;

namespace Pipelines.Tests.EndToEnd;

/// <summary>
/// The input rules on a bucket (the real Swift S3 API), with the CLI in the embedded mode: an
/// output prefix under the input prefix is left out of the next run's input, and a key the
/// engine cannot carry is refused as it is for a local folder.
/// </summary>
[Integration]
public sealed class OutputInsideInputS3Tests : IAsyncLifetime
{
    private readonly ObjectStoreFactory _stores = new(TestEnvironment.S3);
    private readonly TempFolder _temp = new();
    private Dictionary<string, string?> _env = null!;
    private string _bucket = null!;

    public async Task InitializeAsync()
    {
        _bucket = await TestEnvironment.NewBucketAsync(_stores.S3Client);
        _env = new() { ["PIPELINES_HOME"] = _temp.Combine("home") };
        var input = _stores.Open($"s3://{_bucket}/reads/");
        foreach (var name in new[] { "S001_R1.fastq", "S002_R1.fastq" })
        {
            await input.Store.UploadAsync(input.Key(name), Path.Combine(TestEnvironment.SampleFastq, "lane1", name), CancellationToken.None);
        }
    }

    public Task DisposeAsync()
    {
        _stores.Dispose();
        _temp.Dispose();
        return Task.CompletedTask;
    }

    [Fact]
    public async Task A_second_run_leaves_out_the_first_runs_outputs_under_the_input_prefix_and_says_how_many()
    {
        string[] args = ["run", "workflows/fastq-stats.yaml", "--set", $"input.uri=s3://{_bucket}/reads/", "--set", $"output.uri=s3://{_bucket}/reads/results/", "--set", "input.include=[\"**\"]"];

        var first = await CliRunner.RunAsync(args, _env);
        var written = 0;
        await foreach (var _ in _stores.Open($"s3://{_bucket}/reads/results/").Store.ListAsync("reads/results/", CancellationToken.None))
        {
            written++;
        }

        var second = await CliRunner.RunAsync(args, _env);

        Assert.True(first.ExitCode == 0, first.ToString());
        Assert.Contains("1 task(s) over 2 input file(s)", first.Stdout, StringComparison.Ordinal);
        Assert.True(second.ExitCode == 0, second.ToString());
        Assert.Contains("1 task(s) over 2 input file(s)", second.Stdout, StringComparison.Ordinal);
        Assert.Contains($"note: {written} file(s) under the output location s3://{_bucket}/reads/results/ (earlier runs' results) were left out of the input", second.Stdout, StringComparison.Ordinal);
        Assert.Contains("stats: 2 rows gathered", second.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_key_with_a_newline_in_the_bucket_is_refused_naming_it_escaped()
    {
        var input = _stores.Open($"s3://{_bucket}/reads/");
        await input.Store.PutAsync(input.Key("lane\n2/a.fastq"), "@r\nA\n+\nI\n"u8.ToArray(), "text/plain", CancellationToken.None);

        var r = await CliRunner.RunAsync(["plan", "workflows/fastq-stats.yaml", "--set", $"input.uri=s3://{_bucket}/reads/"], _env);

        Assert.True(r.ExitCode == 1, r.ToString());
        Assert.Equal($@"error: input 'lane\n2/a.fastq' under s3://{_bucket}/reads/ holds a control character: rename it (names like this are refused, never skipped)", r.Stderr.TrimEnd());
        Assert.DoesNotContain("   at ", r.Stderr, StringComparison.Ordinal);
    }

    /// <summary>
    /// A key is staged at in/KEY by a root process: a key whose part after the prefix starts with
    /// '/' (reads//x) or climbs with '..' would name a path outside in/, on the host. It is refused
    /// at the listing, naming it, and nothing is written where it points.
    /// </summary>
    [Theory]
    [InlineData("/tmp/pipelines-escape-{0}.fastq", "has an empty segment (a leading '/', '//' or a trailing '/': not a plain path)")]
    [InlineData("lane1/../../../../../../../../../../../../tmp/pipelines-escape-{0}.fastq", "escapes the prefix (a '.' or '..' segment: not a plain path)")]
    public async Task A_key_that_would_stage_outside_in_is_refused_and_nothing_is_written_where_it_points(string shape, string problem)
    {
        var name = $"pipelines-escape-{Guid.NewGuid():N}.fastq";
        var relative = string.Format(System.Globalization.CultureInfo.InvariantCulture, shape, name[("pipelines-escape-".Length)..^".fastq".Length]);
        var input = _stores.Open($"s3://{_bucket}/reads/");
        await input.Store.PutAsync(input.Key(relative), "@r\nACGT\n+\nIIII\n"u8.ToArray(), "text/plain", CancellationToken.None);
        var listed = new List<string>();
        await foreach (var o in input.Store.ListAsync("reads/", CancellationToken.None))
        {
            listed.Add(o.Key);
        }

        var r = await CliRunner.RunAsync(["run", "workflows/fastq-stats.yaml", "--set", $"input.uri=s3://{_bucket}/reads/", "--set", $"output.uri={_temp.Combine("out")}", "--set", "input.include=[\"**\"]"], _env);

        Assert.Contains("reads/" + relative, listed);
        Assert.True(r.ExitCode == 1, r.ToString());
        Assert.Equal($"error: input '{relative}' under s3://{_bucket}/reads/ {problem}: rename it (names like this are refused, never skipped)", r.Stderr.TrimEnd());
        Assert.False(File.Exists(Path.Combine("/tmp", name)), "the key's content was written outside in/");
    }
}
