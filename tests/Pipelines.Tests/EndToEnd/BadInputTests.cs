using System.Diagnostics;
using Pipelines.Tests.Support;

namespace Pipelines.Tests.EndToEnd;

/// <summary>
/// The real CLI on bad input: one line that names the problem and its path, exit 1 (input or
/// environment) or 2 (workflow or arguments), and never a stack trace.
/// </summary>
[Integration]
public sealed class BadInputTests : IDisposable
{
    private readonly TempFolder _temp = new();
    private readonly Dictionary<string, string?> _env;
    private readonly string _workflow;

    public BadInputTests()
    {
        _env = new() { ["PIPELINES_HOME"] = _temp.Combine("home") };
        Directory.CreateDirectory(_temp.Combine("in"));
        File.Copy(Path.Combine(TestEnvironment.SampleFastq, "lane1", "S001_R1.fastq"), _temp.Combine("in", "S001_R1.fastq"));
        _workflow = _temp.Combine("wf.yaml");
        File.WriteAllText(_workflow, """
            version: 1
            name: bad-input
            input:
              uri: in/
              include: ["**"]
              batch: 10
            steps:
              - name: stats
                image: pipelines-samples/fastq-stats:1
                command: ["fastq-stats", "--out", "/out/stats.tsv", "{inputs}"]
                outputs: ["*.tsv"]
            gather:
              - name: stats
                from: stats/*.tsv
                header: false
                columns: [file, reads, bases, gc, mean_quality]
            output:
              uri: out/
            """);
    }

    [Theory]
    [InlineData("validate")]
    [InlineData("plan")]
    [InlineData("run")]
    public async Task A_dangling_link_in_the_input_is_one_line_naming_it(string command)
    {
        File.CreateSymbolicLink(_temp.Combine("in", "gone.fastq"), _temp.Combine("nowhere.fastq"));

        var r = await CliAsync(command);

        if (command == "validate")
        {
            // validate reads the file only: the input is listed by plan and run.
            Assert.Equal(0, r.ExitCode);
            return;
        }

        AssertOneLine(r, 1, $"error: {_temp.Combine("in", "gone.fastq")} is a dangling symbolic link: {_temp.Combine("nowhere.fastq")} does not exist");
    }

    [Theory]
    [InlineData("plan")]
    [InlineData("run")]
    public async Task A_link_loop_between_two_links_is_one_line_naming_it(string command)
    {
        File.CreateSymbolicLink(_temp.Combine("in", "a.fastq"), "b");
        File.CreateSymbolicLink(_temp.Combine("in", "b"), "a.fastq");

        var r = await CliAsync(command);

        AssertOneLine(r, 1, $"error: {_temp.Combine("in", "b")} is a symbolic link loop");
    }

    [Fact]
    public async Task A_folder_link_to_its_parent_is_one_line_naming_it()
    {
        Directory.CreateDirectory(_temp.Combine("in", "sub"));
        Directory.CreateSymbolicLink(_temp.Combine("in", "sub", "up"), "..");

        var r = await CliAsync("plan");

        AssertOneLine(r, 1, $"error: {_temp.Combine("in", "sub", "up")} is a symbolic link loop: it leads back to a folder that contains it ({_temp.Combine("in")})");
    }

    [Fact]
    public async Task A_name_that_is_not_utf8_is_one_line_naming_it()
    {
        Run("python3", "-c", $"open(b'{_temp.Combine("in")}/\\xff.fastq', 'w').write('x')");

        var r = await CliAsync("plan");

        AssertOneLine(r, 1, $"error: {_temp.Combine("in")}/\uFFFD.fastq: the name is not valid UTF-8 (shown with U+FFFD); rename it");
    }

    [Fact]
    public async Task A_fifo_in_the_input_is_refused_without_blocking()
    {
        Run("mkfifo", _temp.Combine("in", "pipe.fastq"));

        var r = await CliAsync("plan");

        AssertOneLine(r, 1, $"error: {_temp.Combine("in", "pipe.fastq")} is a named pipe (fifo): an input folder may hold only files, folders and links to them");
    }

    [Fact]
    public async Task A_newline_in_an_input_name_is_refused_naming_the_key_escaped_not_dropped()
    {
        File.Copy(_temp.Combine("in", "S001_R1.fastq"), _temp.Combine("in", "new\nline.fastq"));

        var r = await CliAsync("plan");

        AssertOneLine(r, 1, $@"error: input 'new\nline.fastq' under {_temp.Combine("in")}/ holds a control character: rename it (names like this are refused, never skipped)");
    }

    [Theory]
    [InlineData("validate", "steps[99999999999].image=x", "--set steps[99999999999].image: there is no item [99999999999] to set")]
    [InlineData("plan", "steps[99999999999].image=x", "--set steps[99999999999].image: there is no item [99999999999] to set")]
    [InlineData("run", "steps[-1].image=x", "--set steps[-1].image: is not a field path; write e.g. input.batch or steps[0].resources.memory")]
    [InlineData("validate", "nonsense", "--set nonsense: must look like key.path=value, e.g. input.batch=10")]
    [InlineData("validate", "a..b=1", "--set a..b: is not a field path; write e.g. input.batch or steps[0].resources.memory")]
    public async Task A_bad_set_is_an_invalid_workflow_naming_the_override(string command, string set, string problem)
    {
        var r = await CliAsync(command, set);

        // An invalid workflow is a header and one line per problem (workflow-spec.md, Errors).
        Assert.Equal(2, r.ExitCode);
        Assert.Equal([$"{_workflow} is not a valid workflow (1 problem):", "  " + problem], Lines(r.Stderr));
        Assert.DoesNotContain("   at ", r.Stderr, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("plan")]
    [InlineData("run")]
    public async Task An_output_uri_that_is_a_device_is_refused_before_listing(string command)
    {
        var r = await CliAsync(command, "output.uri=/dev/null");

        AssertOneLine(r, 1, "error: output.uri /dev/null cannot be a folder: /dev/null is a character device, not a folder");
    }

    [Fact]
    public async Task An_output_uri_that_is_an_existing_file_is_refused()
    {
        var file = _temp.Write("results.txt", "not a folder");

        var r = await CliAsync("run", "output.uri=" + file);

        AssertOneLine(r, 1, $"error: output.uri {file} cannot be a folder: {file} is a file, not a folder");
    }

    [Fact]
    public async Task An_output_folder_that_cannot_be_created_names_the_part_in_the_way()
    {
        var file = _temp.Write("results.txt", "not a folder");

        var r = await CliAsync("run", $"output.uri={file}/deeper/out");

        AssertOneLine(r, 1, $"error: output.uri {file}/deeper/out cannot be a folder: {file} is a file, not a folder");
    }

    [Fact]
    public async Task A_workflow_file_that_is_a_folder_is_an_invalid_workflow_saying_so()
    {
        var r = await CliRunner.RunAsync(["plan", _temp.Combine("in")], _env);

        Assert.Equal(2, r.ExitCode);
        Assert.Equal([$"{_temp.Combine("in")} is not a valid workflow (1 problem):", $"  (file): {_temp.Combine("in")} is a folder, not a workflow file"], Lines(r.Stderr));
        Assert.DoesNotContain("   at ", r.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Linked_inputs_run_and_a_second_run_leaves_out_the_first_runs_outputs_under_the_input()
    {
        Directory.CreateDirectory(_temp.Combine("lane2"));
        File.Copy(Path.Combine(TestEnvironment.SampleFastq, "lane2", "S041_R1.fastq"), _temp.Combine("lane2", "S041_R1.fastq"));
        Directory.CreateSymbolicLink(_temp.Combine("in", "lane2"), _temp.Combine("lane2"));
        File.CreateSymbolicLink(_temp.Combine("in", "linked.fastq"), Path.Combine(TestEnvironment.SampleFastq, "lane1", "S002_R1.fastq"));
        var output = "output.uri=" + _temp.Combine("in", "results");

        var first = await CliAsync("run", output);
        var written = Directory.EnumerateFiles(_temp.Combine("in", "results"), "*", SearchOption.AllDirectories).Count();
        var second = await CliAsync("run", output);

        Assert.True(first.ExitCode == 0, first.ToString());
        Assert.Contains("1 task(s) over 3 input file(s)", first.Stdout, StringComparison.Ordinal);
        Assert.DoesNotContain("note:", first.Stdout, StringComparison.Ordinal);
        Assert.Contains("stats: 3 rows gathered", first.Stdout, StringComparison.Ordinal);
        Assert.True(second.ExitCode == 0, second.ToString());
        Assert.Contains("1 task(s) over 3 input file(s)", second.Stdout, StringComparison.Ordinal);
        var note = Assert.Single(Lines(second.Stdout), l => l.StartsWith("note: ", StringComparison.Ordinal));
        Assert.Equal($"note: {written} file(s) under the output location {_temp.Combine("in", "results")}/ (earlier runs' results) were left out of the input", note);
        Assert.Contains("(0 succeeded, 1 cached", second.Stdout, StringComparison.Ordinal);
    }

    private Task<CliRunner.Result> CliAsync(string command, params string[] sets)
    {
        var args = new List<string> { command, _workflow };
        foreach (var s in sets)
        {
            args.Add("--set");
            args.Add(s);
        }

        return CliRunner.RunAsync(args, _env);
    }

    private static void AssertOneLine(CliRunner.Result r, int exitCode, string line)
    {
        Assert.True(r.ExitCode == exitCode, r.ToString());
        Assert.Equal([line], Lines(r.Stderr));
        Assert.DoesNotContain("   at ", r.Stderr, StringComparison.Ordinal);
    }

    private static List<string> Lines(string text) => text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.TrimEnd('\r')).ToList();

    private static void Run(string file, params string[] args)
    {
        using var p = Process.Start(new ProcessStartInfo(file, args) { RedirectStandardError = true })!;
        p.WaitForExit();
        Assert.True(p.ExitCode == 0, $"{file} failed: {p.StandardError.ReadToEnd()}");
    }

    public void Dispose() => _temp.Dispose();
}
