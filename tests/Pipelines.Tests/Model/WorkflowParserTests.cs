using Pipelines.Model;

namespace Pipelines.Tests.Model;

[Unit]
public sealed class WorkflowParserTests
{
    // The example of docs/workflow-spec.md, without `samplesheet`: the example shows it next to
    // group_by and include only to document it; the contract says it is used instead of globbing.
    private const string SpecExample = """
        version: 1
        name: fastq-stats                 # [a-z0-9][a-z0-9-]{0,62}
        description: Per-sample read statistics

        input:
          uri: s3://raw-reads/run-42/
          include: ["**/*.fastq", "**/*.fastq.gz"]   # globs relative to uri; default ["**"]
          exclude: ["**/tmp/**"]           # default []
          group_by: '(?<sample>[^/]+)_R[12]\.fastq(\.gz)?$'
          batch: 50                        # units per task; default 1

        steps:                             # run in order inside each task
          - name: stats
            image: pipelines-samples/fastq-stats:1
            command: ["fastq-stats", "--out", "/out/stats.tsv", "{inputs}"]
            env: { LC_ALL: C }
            resources: { cpus: 1, memory: 512Mi, timeout: 10m }
            retries: 2                     # extra attempts after a failure; default 0
            outputs: ["*.tsv"]             # globs under /out that are kept; default ["**"]

        gather:                            # after every task has ended
          - name: stats                    # -> results/stats.parquet and results/stats.csv
            from: stats/*.tsv              # <step>/<glob> over every task's kept outputs
            format: tsv                    # tsv | csv
            header: false                  # whether each part has a header row
            columns: [file, reads, bases, gc, mean_quality]   # required when header is false
            to: [parquet, csv]             # default [parquet]

        output:
          uri: s3://results/fastq-stats/   # each run writes under <uri>/<run-id>/

        on_error: continue

        trigger:                           # optional: start runs when new objects land
          uri: s3://incoming/
          include: ["**/*.fastq"]
          settle: 30s                      # wait until no new object has arrived for this long
        """;

    [Fact]
    public void Parse_spec_example_exactly_as_written_is_valid_and_warns_about_what_the_samplesheet_overrides()
    {
        var text = File.ReadAllText(Path.Combine(Support.TestEnvironment.RepoRoot, "docs", "workflow-spec.md"));
        var start = text.IndexOf("```yaml\n", StringComparison.Ordinal) + "```yaml\n".Length;
        var yaml = text[start..text.IndexOf("```", start, StringComparison.Ordinal)];

        var w = WorkflowParser.Parse(yaml, "spec example", "/work/flows");

        Assert.Equal("/work/flows/samplesheet.csv", w.Input.Samplesheet);
        Assert.Equal(["input.group_by", "input.include/exclude"], w.Warnings.Select(x => x.Path).Order(StringComparer.Ordinal));
    }

    [Fact]
    public void Parse_spec_example_reads_every_field()
    {
        var w = WorkflowText.Parse(SpecExample);

        Assert.Equal(1, w.Version);
        Assert.Equal("fastq-stats", w.Name);
        Assert.Equal("Per-sample read statistics", w.Description);

        Assert.Equal("s3://raw-reads/run-42/", w.Input.Uri);
        Assert.Equal(["**/*.fastq", "**/*.fastq.gz"], w.Input.Include);
        Assert.Equal(["**/tmp/**"], w.Input.Exclude);
        Assert.Equal(@"(?<sample>[^/]+)_R[12]\.fastq(\.gz)?$", w.Input.GroupBy);
        Assert.Equal(50, w.Input.Batch);
        Assert.Null(w.Input.Samplesheet);

        var step = Assert.Single(w.Steps);
        Assert.Equal("stats", step.Name);
        Assert.Equal("pipelines-samples/fastq-stats:1", step.Image);
        Assert.Equal(["fastq-stats", "--out", "/out/stats.tsv", "{inputs}"], step.Command);
        Assert.Equal(new Dictionary<string, string> { ["LC_ALL"] = "C" }, step.Env);
        Assert.Equal(new Resources(1, 512L * 1024 * 1024, TimeSpan.FromMinutes(10), Resources.Default.Pids), step.Resources);
        Assert.Equal(2, step.Retries);
        Assert.Equal(["*.tsv"], step.Outputs);

        var gather = Assert.Single(w.Gather);
        Assert.Equal("stats", gather.Name);
        Assert.Equal("stats", gather.FromStep);
        Assert.Equal("*.tsv", gather.FromGlob);
        Assert.Equal(TableFormat.Tsv, gather.Format);
        Assert.False(gather.Header);
        Assert.Equal(["file", "reads", "bases", "gc", "mean_quality"], gather.Columns);
        Assert.Equal([ResultFormat.Parquet, ResultFormat.Csv], gather.To);

        Assert.Equal("s3://results/fastq-stats/", w.Output.Uri);
        Assert.Equal(OnError.Continue, w.OnError);

        Assert.NotNull(w.Trigger);
        Assert.Equal("s3://incoming/", w.Trigger.Uri);
        Assert.Equal(["**/*.fastq"], w.Trigger.Include);
        Assert.Equal(TimeSpan.FromSeconds(30), w.Trigger.Settle);
    }

    [Fact]
    public void Parse_spec_example_without_trigger_has_no_trigger()
    {
        var withoutTrigger = SpecExample[..SpecExample.IndexOf("trigger:", StringComparison.Ordinal)];

        var w = WorkflowText.Parse(withoutTrigger);

        Assert.Null(w.Trigger);
        Assert.Equal("fastq-stats", w.Name);
    }

    [Fact]
    public void Parse_minimal_file_fills_in_the_documented_defaults()
    {
        var w = WorkflowText.Parse(WorkflowText.Minimal);

        Assert.Null(w.Description);
        Assert.Equal(["**"], w.Input.Include);
        Assert.Empty(w.Input.Exclude);
        Assert.Null(w.Input.GroupBy);
        Assert.Equal(1, w.Input.Batch);
        Assert.Null(w.Input.Samplesheet);
        var step = Assert.Single(w.Steps);
        Assert.Empty(step.Env);
        Assert.Equal(0, step.Retries);
        Assert.Equal(["**"], step.Outputs);
        Assert.Equal(Resources.Default, step.Resources);
        Assert.Empty(w.Gather);
        Assert.Equal(OnError.Continue, w.OnError);
        Assert.Null(w.Trigger);
    }

    [Fact]
    public void Resources_default_is_one_cpu_512Mi_ten_minutes_256_pids()
    {
        Assert.Equal(new Resources(1, 512L * 1024 * 1024, TimeSpan.FromMinutes(10), 256), Resources.Default);
    }

    [Fact]
    public void Parse_gather_with_name_and_from_only_has_header_and_parquet()
    {
        var w = WorkflowText.Parse(WorkflowText.Minimal + """

            gather:
              - name: stats
                from: stats/*.tsv
            """);

        var g = Assert.Single(w.Gather);
        Assert.Equal(TableFormat.Tsv, g.Format);
        Assert.True(g.Header);
        Assert.Null(g.Columns);
        Assert.Equal([ResultFormat.Parquet], g.To);
    }

    [Fact]
    public void Parse_gather_from_csv_files_defaults_to_csv_format()
    {
        var w = WorkflowText.Parse(WorkflowText.Minimal + """

            gather:
              - name: stats
                from: stats/*.csv
            """);

        Assert.Equal(TableFormat.Csv, Assert.Single(w.Gather).Format);
    }

    [Fact]
    public void Parse_trigger_without_include_and_settle_watches_everything_for_30s()
    {
        var w = WorkflowText.Parse(WorkflowText.Minimal + """

            trigger:
              uri: s3://incoming/
            """);

        Assert.NotNull(w.Trigger);
        Assert.Equal(["**"], w.Trigger.Include);
        Assert.Equal(TimeSpan.FromSeconds(30), w.Trigger.Settle);
    }

    [Fact]
    public void Parse_on_error_fail_is_read()
    {
        var w = WorkflowText.Parse(WorkflowText.Minimal + "\non_error: fail\n");

        Assert.Equal(OnError.Fail, w.OnError);
    }

    [Fact]
    public void Parse_steps_keep_their_order()
    {
        var w = WorkflowText.Parse("""
            version: 1
            name: two-steps
            input:
              uri: s3://in-bucket/data/
            steps:
              - name: first
                image: tools/a:1
                command: ["a", "{inputs}"]
              - name: second
                image: tools/b:1
                command: ["b", "/steps/first/"]
                resources: { cpus: 0.5, memory: 1.5Gi, timeout: 1h30m, pids: 64 }
            output:
              uri: s3://out-bucket/results/
            """);

        Assert.Equal(["first", "second"], w.Steps.Select(s => s.Name));
        Assert.Equal(new Resources(0.5, 1536L * 1024 * 1024, TimeSpan.FromMinutes(90), 64), w.Steps[1].Resources);
    }

    [Theory]
    [InlineData("data/", "/work/flows/data/")]
    [InlineData("./data", "/work/flows/data")]
    [InlineData("../sample-data/fastq/", "/work/sample-data/fastq/")]
    [InlineData("/abs/path", "/abs/path")]
    [InlineData("file:///abs/path/", "/abs/path/")]
    [InlineData("/abs/./x/../path", "/abs/path")]
    public void Parse_local_uri_resolves_against_the_base_directory(string written, string resolved)
    {
        var w = WorkflowText.Parse(WorkflowText.Minimal.Replace("s3://in-bucket/data/", written, StringComparison.Ordinal));

        Assert.Equal(resolved, w.Input.Uri);
    }

    [Fact]
    public void Parse_relative_output_and_samplesheet_resolve_against_the_base_directory()
    {
        var w = WorkflowText.Parse("""
            version: 1
            name: local
            input:
              uri: ../data/
              samplesheet: sheets/samples.csv
            steps:
              - name: stats
                image: tools/stats:1
                command: ["stats", "{inputs}"]
            output:
              uri: out/
            """);

        Assert.Equal("/work/data/", w.Input.Uri);
        Assert.Equal("/work/flows/sheets/samples.csv", w.Input.Samplesheet);
        Assert.Equal("/work/flows/out/", w.Output.Uri);
    }

    [Fact]
    public void Parse_s3_uri_is_kept_as_written()
    {
        var w = WorkflowText.Parse(WorkflowText.Minimal.Replace("s3://in-bucket/data/", "s3://raw.reads-42/Run 42/x", StringComparison.Ordinal));

        Assert.Equal("s3://raw.reads-42/Run 42/x", w.Input.Uri);
    }

    [Fact]
    public void Parse_relative_uri_without_base_directory_is_refused()
    {
        var yaml = WorkflowText.Minimal.Replace("s3://in-bucket/data/", "data/", StringComparison.Ordinal);

        var e = Assert.Throws<WorkflowInvalidException>(() => WorkflowParser.Parse(yaml, "api", baseDirectory: null));

        var p = Assert.Single(e.Problems);
        Assert.Equal("input.uri", p.Path);
        Assert.Equal("'data/' is a relative path, but this workflow was not read from a file; use an absolute path or s3://", p.Message);
        Assert.Equal((4, 8), (p.Line, p.Column));
    }

    [Fact]
    public void Parse_absolute_uri_without_base_directory_is_accepted()
    {
        var yaml = WorkflowText.Minimal.Replace("s3://in-bucket/data/", "/data/", StringComparison.Ordinal);

        var w = WorkflowParser.Parse(yaml, "api", baseDirectory: null);

        Assert.Equal("/data/", w.Input.Uri);
    }

    [Fact]
    public void Parse_samplesheet_instead_of_globbing_is_read()
    {
        var w = WorkflowText.Parse("""
            version: 1
            name: sheet
            input:
              uri: s3://in-bucket/data/
              samplesheet: s3://in-bucket/samples.csv
            steps:
              - name: stats
                image: tools/stats:1
                command: ["stats", "--out", "/out/{sample}.tsv", "{inputs}"]
            output:
              uri: s3://out-bucket/results/
            """);

        Assert.Equal("s3://in-bucket/samples.csv", w.Input.Samplesheet);
        Assert.Equal(["**"], w.Input.Include);
    }
}
