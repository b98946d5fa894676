using Pipelines.Containers.Warm;
using Pipelines.Functions;
using Pipelines.Model;

namespace Pipelines.Tests.Functions;

/// <summary>The function file: what it accepts, its defaults, and every refusal pointing at the user's line.</summary>
[Unit]
public sealed class FunctionParserTests
{
    private const string Fork = """
        name: thumbnail
        description: A small picture of a big one
        image: pipelines-samples/pair-check:1
        command: ["thumb", "{input}", "/out/thumb.png"]
        env: { LC_ALL: C }
        secrets: [API_TOKEN]
        resources: { cpus: 0.5, memory: 64Mi, timeout: 5s }
        min_warm: 1
        max: 8
        idle_timeout: 2m
        max_request_size: 1Mi
        output: thumb.png
        """;

    private static List<WorkflowProblem> Problems(string yaml) =>
        Assert.Throws<FunctionInvalidException>(() => FunctionParser.Parse(yaml, "f.yaml")).Problems.ToList();

    [Fact]
    public void Parse_reads_every_field_of_a_fork_function()
    {
        var f = FunctionParser.Parse(Fork, "f.yaml");

        Assert.Equal("thumbnail", f.Name);
        Assert.Equal(WarmMode.Fork, f.Mode);
        Assert.Equal(["thumb", "{input}", "/out/thumb.png"], f.Command);
        Assert.Equal("C", f.Env["LC_ALL"]);
        Assert.Equal(["API_TOKEN"], f.Secrets);
        Assert.Equal(TimeSpan.FromSeconds(5), f.Resources.Timeout);
        Assert.Equal(64L * 1024 * 1024, f.Resources.MemoryBytes);
        Assert.Equal((1, 1, 8, TimeSpan.FromMinutes(2), 1024L * 1024), (f.Concurrency, f.MinWarm, f.Max, f.IdleTimeout, f.MaxRequestBytes));
        Assert.Equal("thumb.png", f.Output);
        Assert.Null(f.ContentType);
    }

    [Fact]
    public void Parse_gives_a_minimal_http_function_its_defaults()
    {
        var f = FunctionParser.Parse("name: ocr\nimage: ocr:2\nmode: http\nconcurrency: 4\n", "f.yaml");

        Assert.Equal(WarmMode.Http, f.Mode);
        Assert.Empty(f.Command);
        Assert.Equal((4, 0, 4, 100), (f.Concurrency, f.MinWarm, f.Max, f.Queue));
        Assert.Equal(TimeSpan.FromSeconds(30), f.Resources.Timeout);
        Assert.Equal(TimeSpan.FromMinutes(5), f.IdleTimeout);
        Assert.Equal(FunctionSpec.DefaultMaxRequestBytes, f.MaxRequestBytes);
    }

    [Fact]
    public void Parse_refuses_an_unknown_field_by_name_with_its_line_and_a_suggestion()
    {
        var p = Assert.Single(Problems("name: a\nimage: b\ncommand: [x]\nmax_warm: 2\n"));

        Assert.Equal("max_warm", p.Path);
        Assert.Equal((4, 1), (p.Line, p.Column));
        Assert.Contains("did you mean 'min_warm'?", p.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_reports_every_problem_at_once_in_file_order()
    {
        var problems = Problems("""
            name: Bad_Name
            image: x
            command: [x]
            mode: batch
            resources: { timeout: soon }
            max_request_size: lots
            min_warm: 9
            max: 2
            """);

        Assert.Equal(["name", "mode", "resources.timeout", "max_request_size", "min_warm"], problems.Select(p => p.Path));
        Assert.All(problems, p => Assert.True(p.Line > 0));
        Assert.Contains("'batch' is not a mode", problems[1].Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_requires_a_command_in_fork_mode_but_not_in_http_mode()
    {
        Assert.Equal("command", Assert.Single(Problems("name: a\nimage: b\n")).Path);
        Assert.Empty(FunctionParser.Parse("name: a\nimage: b\nmode: http\n", "f.yaml").Command);
    }

    [Fact]
    public void Parse_refuses_concurrency_above_one_in_fork_mode()
    {
        var p = Assert.Single(Problems("name: a\nimage: b\ncommand: [x]\nconcurrency: 4\n"));

        Assert.Equal("concurrency", p.Path);
        Assert.Contains("one request at a time", p.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_refuses_placeholders_a_function_has_no_value_for()
    {
        var fork = Assert.Single(Problems("name: a\nimage: b\ncommand: [x, \"{sample}\"]\n"));
        var http = Assert.Single(Problems("name: a\nimage: b\nmode: http\ncommand: [serve, \"{input}\"]\n"));

        Assert.Equal("command[1]", fork.Path);
        Assert.Contains("{sample} is not a placeholder of a function", fork.Message, StringComparison.Ordinal);
        Assert.Equal("command[1]", http.Path);
        Assert.Contains("starts the server once", http.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("/etc/passwd", "outside /out")]
    [InlineData("../x", "not a plain path")]
    [InlineData("/out/a//b", "not a plain path")]
    public void Parse_refuses_an_output_that_is_not_a_file_under_out(string output, string expected)
    {
        var p = Assert.Single(Problems($"name: a\nimage: b\ncommand: [x]\noutput: \"{output}\"\n"));

        Assert.Equal("output", p.Path);
        Assert.Contains(expected, p.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_accepts_an_output_written_with_or_without_out()
    {
        Assert.Equal("/out/r.png", FunctionParser.Parse("name: a\nimage: b\ncommand: [x]\noutput: /out/r.png\n", "f").Output);
        Assert.Equal("sub/r.png", FunctionParser.Parse("name: a\nimage: b\ncommand: [x]\noutput: sub/r.png\n", "f").Output);
    }

    [Fact]
    public void Parse_refuses_output_and_content_type_in_http_mode_where_the_server_answers()
    {
        var problems = Problems("name: a\nimage: b\nmode: http\noutput: r.png\ncontent_type: image/png\n");

        Assert.Equal(["output", "content_type"], problems.Select(p => p.Path));
    }

    [Fact]
    public void Parse_refuses_a_content_type_that_is_not_a_media_type()
    {
        Assert.Equal("content_type", Assert.Single(Problems("name: a\nimage: b\ncommand: [x]\ncontent_type: \"not a type\"\n")).Path);
    }

    [Fact]
    public void Parse_refuses_a_secret_also_given_in_env_and_a_request_limit_beyond_5Gi()
    {
        var problems = Problems("name: a\nimage: b\ncommand: [x]\nenv: { T: 1 }\nsecrets: [T]\nmax_request_size: 6Gi\n");

        Assert.Equal(["secrets[0]", "max_request_size"], problems.Select(p => p.Path));
    }

    [Fact]
    public void Parse_says_what_is_wrong_with_text_that_is_not_a_function()
    {
        Assert.Contains("not valid YAML", Assert.Single(Problems("name: [a\nimage: b")).Message, StringComparison.Ordinal);
        Assert.Contains("the file is empty", Assert.Single(Problems("")).Message, StringComparison.Ordinal);
        Assert.Contains("must be a mapping", Assert.Single(Problems("- a\n- b\n")).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_parsed_function_round_trips_through_its_stored_json()
    {
        var f = FunctionParser.Parse(Fork, "f.yaml");

        var back = FunctionSpec.FromJson(f.ToJson());

        Assert.Equal(f.ToJson(), back.ToJson());
        Assert.Equal(f.Resources, back.Resources);
        Assert.Equal(f.Command, back.Command);
    }

    [Fact]
    public void Expand_puts_the_one_input_at_in_and_refuses_input_with_several_files()
    {
        var one = new FunctionInput("/x", [new InputPart("a.png", "/x/a.png", 1)], null, "", 1);
        var two = new FunctionInput("/x", [new InputPart("a", "/x/a", 1), new InputPart("b", "/x/b", 1)], null, "", 2);

        Assert.Equal(["thumb", "/in/a.png", "/out/t.png"], FunctionInvoker.Expand(["thumb", "{input}", "{out}/t.png"], one, "id"));
        Assert.Equal(["cat", "/in/a", "/in/b"], FunctionInvoker.Expand(["cat", "{inputs}"], two, "id"));
        var e = Assert.Throws<PipelinesException>(() => FunctionInvoker.Expand(["thumb", "{input}"], two, "id"));
        Assert.Contains("exactly one input file", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("reads.fastq", null)]
    [InlineData("a-b_c.1.png", null)]
    [InlineData("..", "not a file name")]
    [InlineData("a/b", "not a plain file name")]
    [InlineData("a b", "not a plain file name")]
    [InlineData("", "is empty")]
    public void Input_names_are_one_plain_name(string name, string? problem)
    {
        var found = InputNames.Problem(name);

        if (problem is null)
        {
            Assert.Null(found);
        }
        else
        {
            Assert.Contains(problem, found, StringComparison.Ordinal);
        }
    }
}
