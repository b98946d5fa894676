using Pipelines.Runs;
using Pipelines.Tests.Model;
using Pipelines.Tests.Support;

namespace Pipelines.Tests.Runs;

/// <summary>
/// A submission's warnings are written by the engine, once: the workflow's own, the files that
/// group_by left out, and the note on earlier runs' results; the CLI and the API only show them.
/// </summary>
[Integration]
public sealed class SubmitWarningTests : IDisposable
{
    private readonly TempFolder _temp = new();

    [Fact]
    public void Of_lists_the_workflow_warnings_then_the_files_group_by_left_out_then_the_output_note()
    {
        var workflow = WorkflowText.Parse("""
            version: 1
            name: both
            input:
              uri: s3://in-bucket/data/
              group_by: '(?<lane>[^/]+)_R[12]\.fastq$'
              samplesheet: s3://in-bucket/samples.csv
            steps:
              - name: stats
                image: tools/stats:1
                command: ["stats", "{sample}", "{inputs}"]
            output:
              uri: s3://in-bucket/data/results/
            """);
        var scope = new InputScope(workflow.Input.Uri, workflow.Output.Uri);
        Assert.False(scope.Admit("results/20261126-053012-7f3a9c/run.json"));

        var warnings = SubmitWarning.Of(workflow, tasks: 1, filesUngrouped: 2, scope);

        Assert.Equal(
            [
                new SubmitWarning("line 5, column 13: input.group_by: is ignored: input.samplesheet says which files form a unit"),
                new SubmitWarning("2 selected file(s) do not match input.group_by and are left out"),
                new SubmitWarning("1 file(s) under the output location s3://in-bucket/data/results/ (earlier runs' results) were left out of the input", IsNote: true),
            ],
            warnings);
    }

    [Fact]
    public void Of_a_workflow_with_nothing_to_say_is_empty_even_at_many_tasks_as_its_steps_reuse_warm_containers()
    {
        var workflow = WorkflowText.Parse(WorkflowText.Minimal);

        Assert.Empty(SubmitWarning.Of(workflow, tasks: 100_000, filesUngrouped: 0, new InputScope(workflow.Input.Uri, workflow.Output.Uri)));
    }

    [Theory]
    [InlineData(300, false)]
    [InlineData(301, true)]
    public void A_step_with_reuse_false_over_a_few_hundred_tasks_is_told_the_fix_in_one_line(int tasks, bool told)
    {
        var workflow = WorkflowText.Parse(WorkflowText.Minimal, "steps[0].reuse=false");

        var warnings = SubmitWarning.Of(workflow, tasks, filesUngrouped: 0, new InputScope(workflow.Input.Uri, workflow.Output.Uri));

        if (told)
        {
            var line = Assert.Single(warnings).Text;
            Assert.StartsWith($"step 'stats' starts a container for each of {tasks} tasks (reuse: false)", line, StringComparison.Ordinal);
            Assert.Contains("remove reuse: false", line, StringComparison.Ordinal);
            Assert.Contains("input.batch: auto", line, StringComparison.Ordinal);
            Assert.DoesNotContain('\n', line);
        }
        else
        {
            Assert.Empty(warnings);
        }
    }

    [Fact]
    public async Task Validate_counts_a_local_input_and_prints_the_same_line_a_run_prints()
    {
        var input = _temp.Combine("many");
        Directory.CreateDirectory(Path.Combine(input, "sub"));
        for (var i = 0; i < 302; i++)
        {
            File.WriteAllText(Path.Combine(input, "sub", $"f{i:D3}.fastq"), "x\n");
        }

        File.WriteAllText(Path.Combine(input, "sub", "notes.txt"), "not selected\n");
        var yaml = $$"""
            version: 1
            name: many
            input:
              uri: {{input}}
              include: ["**/*.fastq"]
              batch: 1
            steps:
              - name: s
                image: pipelines-samples/pair-check:1
                command: ["sh", "-c", "true"]
                reuse: false
            output:
              uri: {{_temp.Combine("out")}}
            """;
        var file = _temp.Write("many.yaml", yaml);

        var told = await CliRunner.RunAsync(["validate", file], new Dictionary<string, string?> { ["PIPELINES_HOME"] = _temp.Combine("home") });
        var quiet = await CliRunner.RunAsync(["validate", file, "--set", "steps[0].reuse=true"], new Dictionary<string, string?> { ["PIPELINES_HOME"] = _temp.Combine("home") });

        Assert.True(told.ExitCode == 0, told.ToString());
        var expected = SubmitWarning.Of(WorkflowText.Parse(yaml), tasks: 302, filesUngrouped: 0, new InputScope(input, _temp.Combine("out"))).Single().Text;
        Assert.Equal($"{file}: warning: {expected}", told.Stderr.Trim());
        Assert.True(quiet.ExitCode == 0, quiet.ToString());
        Assert.Equal("", quiet.Stderr.Trim());
    }

    [Fact]
    public async Task The_cli_prints_the_files_that_group_by_left_out_as_a_warning_on_stderr()
    {
        var input = _temp.Combine("in");
        Directory.CreateDirectory(input);
        foreach (var name in new[] { "S1_R1.fastq", "S1_R2.fastq", "odd.fastq" })
        {
            File.WriteAllText(Path.Combine(input, name), "x\n");
        }

        var file = _temp.Write("grouped.yaml", $$"""
            version: 1
            name: grouped
            input:
              uri: {{input}}
              include: ["*.fastq"]
              group_by: '(?<sample>[^/]+)_R[12]\.fastq$'
            steps:
              - name: s
                image: pipelines-samples/pair-check:1
                command: ["sh", "-c", "true"]
                resources: { cpus: 0.5, memory: 64Mi, timeout: 1m }
            output:
              uri: {{_temp.Combine("out")}}
            """);

        var result = await CliRunner.RunAsync(["run", file], new Dictionary<string, string?> { ["PIPELINES_HOME"] = _temp.Combine("home") });

        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Contains("1 task(s) over 3 input file(s)", result.Stdout, StringComparison.Ordinal);
        Assert.Equal($"{file}: warning: 1 selected file(s) do not match input.group_by and are left out", result.Stderr.Trim());
        Assert.DoesNotContain("note:", result.Stdout, StringComparison.Ordinal);
    }

    public void Dispose() => _temp.Dispose();
}
