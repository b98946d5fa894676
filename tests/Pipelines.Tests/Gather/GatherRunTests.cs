using System.Text.Json;
using Pipelines.Storage;
using Pipelines.Tests.EndToEnd;
using Pipelines.Tests.Support;

namespace Pipelines.Tests.Gather;

/// <summary>
/// Gathers as a user meets them: the CLI in the embedded mode, a busybox step that writes
/// whatever table each input asks for, and what run.json and the summary say about it.
/// </summary>
[Integration]
public sealed class GatherRunTests : IDisposable
{
    private readonly TempFolder _temp = new();
    private readonly Dictionary<string, string?> _env;

    public GatherRunTests()
    {
        _env = new() { ["PIPELINES_HOME"] = _temp.Combine("home") };
    }

    [Fact]
    public async Task Under_continue_malformed_parts_are_left_out_and_listed_while_the_other_tasks_rows_are_gathered()
    {
        var workflow = Workflow("continue", new() { ["a"] = "good 1", ["b"] = "utf8 0", ["c"] = "narrow 0", ["d"] = "good 4" });

        var result = await CliRunner.RunAsync(["run", workflow], _env);

        Assert.Equal(1, result.ExitCode);
        var run = Folder(result);
        var rows = await run.ResultAsync("table");
        Assert.Equal([1L, 4L], rows.Select(r => r["n"]));
        var provenance = await run.ProvenanceAsync();
        string TaskOf(string input) => provenance.Single(p => p.Inputs.Single().Key == input).TaskId;

        using var runJson = await run.RunJsonAsync();
        var root = runJson.RootElement;
        Assert.Equal("failed", root.GetProperty("status").GetString());
        Assert.Equal("2 malformed table part(s) left out of the gathered results (see problems in run.json)", root.GetProperty("error").GetString());
        Assert.Equal(2, root.GetProperty("results").GetProperty("table").GetProperty("rows").GetInt64());
        Assert.Equal(4, root.GetProperty("counts").GetProperty("succeeded").GetInt32());
        Assert.Equal(
            [
                $"gather 'table': task {TaskOf("b")}: tasks/{TaskOf("b")}/make/t.tsv, line 2: not valid UTF-8 (cells must be UTF-8 text)",
                $"gather 'table': task {TaskOf("c")}: tasks/{TaskOf("c")}/make/t.tsv, line 3: 1 cells, expected 2 (n, v)",
            ],
            root.GetProperty("problems").EnumerateArray().Select(p => p.GetString()));
        Assert.Contains($"  problem: gather 'table': task {TaskOf("b")}", result.Stdout, StringComparison.Ordinal);
        Assert.Contains("  error:   2 malformed table part(s) left out", result.Stdout, StringComparison.Ordinal);
        Assert.True(await run.ExistsAsync("results/table.csv"));
    }

    [Fact]
    public async Task Under_fail_a_malformed_part_fails_the_gather_and_writes_no_result()
    {
        var workflow = Workflow("fail", new() { ["a"] = "good 1", ["b"] = "narrow 0" }, onError: "fail");

        var result = await CliRunner.RunAsync(["run", workflow], _env);

        Assert.Equal(1, result.ExitCode);
        var run = Folder(result);
        Assert.False(await run.ExistsAsync("results/table.parquet"));
        using var runJson = await run.RunJsonAsync();
        Assert.Equal("failed", runJson.RootElement.GetProperty("status").GetString());
        Assert.Contains("make/t.tsv, line 3: 1 cells, expected 2 (n, v)", runJson.RootElement.GetProperty("error").GetString(), StringComparison.Ordinal);
        Assert.Empty(runJson.RootElement.GetProperty("results").EnumerateObject());
    }

    [Fact]
    public async Task A_task_that_succeeds_without_output_for_a_gather_is_a_warning_and_so_is_a_gather_that_matches_nothing()
    {
        var workflow = Workflow("warn", new() { ["a"] = "good 1", ["b"] = "none 0" }, extraGather: """
              - name: never
                from: make/*.csv
                header: false
                columns: [x]
            """);

        var result = await CliRunner.RunAsync(["run", workflow], _env);

        Assert.Equal(0, result.ExitCode);
        var run = Folder(result);
        var provenance = await run.ProvenanceAsync();
        var empty = provenance.Single(p => p.Inputs.Single().Key == "b");
        var index = empty.TaskIndex;
        using var runJson = await run.RunJsonAsync();
        var warnings = runJson.RootElement.GetProperty("warnings").EnumerateArray().Select(w => w.GetString()).ToList();
        Assert.Equal("succeeded", runJson.RootElement.GetProperty("status").GetString());
        Assert.Contains($"gather 'table': task {index} ({empty.TaskId}) succeeded but left no output matching make/*.tsv", warnings);
        Assert.Contains("gather 'never': no output of any task matches make/*.csv: the table is empty", warnings);
        Assert.Equal(4, warnings.Count); // and 'never' warns for both tasks
        Assert.Contains($"  warning: gather 'table': task {index} ({empty.TaskId}) succeeded", result.Stdout, StringComparison.Ordinal);
        Assert.Single(await run.ResultAsync("table"));

        var status = await CliRunner.RunAsync(["status", RunFolder.RunIdFrom(result)], _env);
        Assert.Contains("  warning: gather 'never': no output of any task matches", status.Stdout, StringComparison.Ordinal);
    }

    /// <summary>
    /// A workflow over one input file per entry: the file's first word says what its task writes
    /// (good: a row with the second word as n; utf8: an invalid byte; narrow: a short row; none: nothing).
    /// </summary>
    private string Workflow(string name, Dictionary<string, string> inputs, string onError = "continue", string extraGather = "")
    {
        var input = _temp.Combine("in-" + name);
        Directory.CreateDirectory(input);
        foreach (var (file, content) in inputs)
        {
            File.WriteAllText(Path.Combine(input, file), content + "\n");
        }

        return _temp.Write(name + ".yaml", $$"""
            version: 1
            name: gather-{{name}}
            input:
              uri: {{input}}
            steps:
              - name: make
                image: pipelines-samples/pair-check:1
                command:
                  - sh
                  - -c
                  - 'read kind n < {input}; case $kind in good) printf "n\tv\n%s\tx\n" "$n" > /out/t.tsv ;; utf8) printf "n\tv\n1\t\377\n" > /out/t.tsv ;; narrow) printf "n\tv\n1\tx\n2\n" > /out/t.tsv ;; esac'
                resources: { cpus: 0.5, memory: 64Mi, timeout: 1m }
            gather:
              - name: table
                from: make/*.tsv
                to: [parquet, csv]
            {{extraGather}}
            output:
              uri: {{_temp.Combine("out")}}
            on_error: {{onError}}
            """);
    }

    private RunFolder Folder(CliRunner.Result result)
    {
        Assert.True(result.Stdout.Contains("output: ", StringComparison.Ordinal), result.ToString());
        var factory = new ObjectStoreFactory(new S3Settings(null, null, null, "us-east-1"));
        return new RunFolder(factory.Open(_temp.Combine("out")).Child(RunFolder.RunIdFrom(result)));
    }

    public void Dispose() => _temp.Dispose();
}
