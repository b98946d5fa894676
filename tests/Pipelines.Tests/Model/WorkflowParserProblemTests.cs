using Pipelines.Model;

namespace Pipelines.Tests.Model;

/// <summary>Every way a file breaks the contract is reported with path, line, column and a message to act on.</summary>
[Unit]
public sealed class WorkflowParserProblemTests
{
    [Fact]
    public void Parse_size_that_is_not_a_size_points_at_the_value()
    {
        var p = WorkflowText.Problem("""
            version: 1
            name: bad-memory
            input:
              uri: s3://in-bucket/data/
            steps:
              - name: stats
                image: tools/stats:1
                command: ["stats", "{inputs}"]
                resources: { memory: 12XB }
            output:
              uri: s3://out-bucket/results/
            """);

        Assert.Equal("steps[0].resources.memory", p.Path);
        Assert.Equal((9, 26), (p.Line, p.Column));
        Assert.StartsWith("'12XB' is not a size", p.Message, StringComparison.Ordinal);
        Assert.Equal("line 9, column 26: steps[0].resources.memory: '12XB' is not a size (e.g. 512Mi, 2Gi, 1G)", p.ToString());
    }

    [Theory]
    [InlineData("cpus: 0", "steps[0].resources.cpus", "'0' is not a number of CPUs (e.g. 1, 0.5, 2)")]
    [InlineData("cpus: many", "steps[0].resources.cpus", "'many' is not a number of CPUs (e.g. 1, 0.5, 2)")]
    [InlineData("memory: 1Mi", "steps[0].resources.memory", "'1Mi' is below the 6Mi that a container needs at least")]
    [InlineData("timeout: soon", "steps[0].resources.timeout", "'soon' is not a duration (e.g. 30s, 10m, 1h30m)")]
    [InlineData("timeout: 0s", "steps[0].resources.timeout", "'0s' is not a duration (e.g. 30s, 10m, 1h30m)")]
    [InlineData("timeout: 99999999999d", "steps[0].resources.timeout", "'99999999999d' is not a duration (e.g. 30s, 10m, 1h30m)")]
    [InlineData("pids: 0", "steps[0].resources.pids", "is 0; a container needs at least 1 process")]
    public void Parse_bad_resource_is_reported_at_its_field(string resource, string path, string message)
    {
        var p = WorkflowText.Problem($$"""
            version: 1
            name: bad-resource
            input:
              uri: s3://in-bucket/data/
            steps:
              - name: stats
                image: tools/stats:1
                command: ["stats", "{inputs}"]
                resources:
                  {{resource}}
            output:
              uri: s3://out-bucket/results/
            """);

        Assert.Equal(path, p.Path);
        Assert.Equal(message, p.Message);
        Assert.Equal(10, p.Line);
    }

    [Fact]
    public void Parse_misspelt_field_suggests_the_right_one()
    {
        var p = WorkflowText.Problem("""
            version: 1
            name: typo
            input:
              uri: s3://in-bucket/data/
            steps:
              - name: stats
                image: tools/stats:1
                command: ["stats", "{inputs}"]
                retires: 2
            output:
              uri: s3://out-bucket/results/
            """);

        Assert.Equal("steps[0].retires", p.Path);
        Assert.Equal("is not a known field; did you mean 'retries'?", p.Message);
        Assert.Equal((9, 5), (p.Line, p.Column));
    }

    [Fact]
    public void Parse_unrelated_unknown_field_lists_the_known_ones()
    {
        var p = WorkflowText.Problem(WorkflowText.Minimal + "\ncolour: red\n");

        Assert.Equal("colour", p.Path);
        Assert.Equal("is not a known field; expected one of version, name, description, input, steps, gather, output, on_error, trigger", p.Message);
        Assert.Equal((11, 1), (p.Line, p.Column));
    }

    [Fact]
    public void Parse_missing_top_level_fields_are_each_reported()
    {
        var problems = WorkflowText.Problems("""
            description: nothing else
            """);

        Assert.Equal(["version", "name", "input", "steps", "output"], problems.Select(p => p.Path));
        Assert.All(problems, p => Assert.Equal("is missing", p.Message));
        Assert.All(problems, p => Assert.Equal((1, 1), (p.Line, p.Column)));
    }

    [Fact]
    public void Parse_missing_step_fields_point_at_the_step()
    {
        var problems = WorkflowText.Problems("""
            version: 1
            name: half-step
            input:
              uri: s3://in-bucket/data/
            steps:
              - name: stats
            output:
              uri: s3://out-bucket/results/
            """);

        Assert.Collection(
            problems,
            p =>
            {
                Assert.Equal("steps[0].image", p.Path);
                Assert.Equal("is missing", p.Message);
                Assert.Equal((6, 5), (p.Line, p.Column));
            },
            p =>
            {
                Assert.Equal("steps[0].command", p.Path);
                Assert.StartsWith("is missing; write the program and its arguments as a list", p.Message, StringComparison.Ordinal);
                Assert.Equal((6, 5), (p.Line, p.Column));
            });
    }

    [Fact]
    public void Parse_missing_uris_are_reported()
    {
        var problems = WorkflowText.Problems("""
            version: 1
            name: no-uris
            input:
              include: ["**"]
            steps:
              - name: stats
                image: tools/stats:1
                command: ["stats", "{inputs}"]
            output: {}
            """);

        Assert.Equal(["input.uri", "output.uri"], problems.Select(p => p.Path));
        Assert.All(problems, p => Assert.Equal("is missing", p.Message));
    }

    [Theory]
    [InlineData("Fastq_Stats")]
    [InlineData("-stats")]
    [InlineData("a-very-long-name-that-goes-on-and-on-and-on-past-sixty-three-chars")]
    public void Parse_bad_workflow_name_says_what_a_name_may_hold(string name)
    {
        var p = WorkflowText.Problem(WorkflowText.Minimal.Replace("name: minimal", "name: " + name, StringComparison.Ordinal));

        Assert.Equal("name", p.Path);
        Assert.Equal($"'{name}' is not a workflow name: use lower-case letters, digits and '-', starting with a letter or digit, at most 63 characters", p.Message);
        Assert.Equal((2, 7), (p.Line, p.Column));
    }

    [Fact]
    public void Parse_version_other_than_1_is_refused()
    {
        var p = WorkflowText.Problem(WorkflowText.Minimal.Replace("version: 1", "version: 2", StringComparison.Ordinal));

        Assert.Equal("version", p.Path);
        Assert.Equal("is 2; this engine reads version 1", p.Message);
        Assert.Equal((1, 10), (p.Line, p.Column));
    }

    [Fact]
    public void Parse_duplicate_step_names_point_at_the_second()
    {
        var p = WorkflowText.Problem("""
            version: 1
            name: dup
            input:
              uri: s3://in-bucket/data/
            steps:
              - name: stats
                image: tools/stats:1
                command: ["stats", "{inputs}"]
              - name: stats
                image: tools/other:1
                command: ["other"]
            output:
              uri: s3://out-bucket/results/
            """);

        Assert.Equal("steps[1].name", p.Path);
        Assert.Equal("'stats' is used by an earlier step; step names must be unique", p.Message);
        Assert.Equal((9, 11), (p.Line, p.Column));
    }

    [Fact]
    public void Parse_empty_steps_is_refused()
    {
        var p = WorkflowText.Problem(WorkflowText.Minimal[..WorkflowText.Minimal.IndexOf("steps:", StringComparison.Ordinal)] + """
            steps: []
            output:
              uri: s3://out-bucket/results/
            """);

        Assert.Equal("steps", p.Path);
        Assert.Equal("is empty; a workflow needs at least one step", p.Message);
    }

    [Fact]
    public void Parse_gather_from_unknown_step_names_the_steps_there_are()
    {
        var p = WorkflowText.Problem(WorkflowText.Minimal + """

            gather:
              - name: stats
                from: stat/*.tsv
            """);

        Assert.Equal("gather[0].from", p.Path);
        Assert.Equal("names step 'stat', which is not a step of this workflow (steps: stats)", p.Message);
        Assert.Equal((13, 11), (p.Line, p.Column));
    }

    [Theory]
    [InlineData("stats")]
    [InlineData("/x.tsv")]
    [InlineData("stats/")]
    public void Parse_gather_from_without_step_and_glob_shows_the_form(string from)
    {
        var p = WorkflowText.Problem(WorkflowText.Minimal + $"""

            gather:
              - name: stats
                from: "{from}"
            """);

        Assert.Equal("gather[0].from", p.Path);
        Assert.Equal($"'{from}' must be <step>/<glob>, e.g. stats/*.tsv", p.Message);
    }

    [Fact]
    public void Parse_gather_header_false_without_columns_asks_for_columns()
    {
        var p = WorkflowText.Problem(WorkflowText.Minimal + """

            gather:
              - name: stats
                from: stats/*.tsv
                header: false
            """);

        Assert.Equal("gather[0].columns", p.Path);
        Assert.Equal("is required when header is false: name each column, e.g. [file, reads, bases]", p.Message);
        Assert.Equal((12, 5), (p.Line, p.Column));
    }

    [Theory]
    [InlineData("format: xlsx", "gather[0].format", "'xlsx' is not a table format; write 'tsv' or 'csv'")]
    [InlineData("to: [parquet, json]", "gather[0].to", "'json' is not a result format; write parquet and/or csv")]
    [InlineData("header: maybe", "gather[0].header", "'maybe' is not true or false")]
    [InlineData("columns: [a, b, a]", "gather[0].columns", "names 'a' twice")]
    public void Parse_bad_gather_field_is_reported(string line, string path, string message)
    {
        var p = WorkflowText.Problem(WorkflowText.Minimal + $"""

            gather:
              - name: stats
                from: stats/*.tsv
                {line}
            """);

        Assert.Equal(path, p.Path);
        Assert.Equal(message, p.Message);
        Assert.Equal(14, p.Line);
    }

    [Fact]
    public void Parse_input_with_batch_above_1_is_refused()
    {
        var p = WorkflowText.Problem("""
            version: 1
            name: single
            input:
              uri: s3://in-bucket/data/
              batch: 10
            steps:
              - name: stats
                image: tools/stats:1
                command: ["stats", "{input}"]
            output:
              uri: s3://out-bucket/results/
            """);

        Assert.Equal("steps[0].command[1]", p.Path);
        Assert.Equal("uses {input}, but batch is 10, so a task has several inputs; use {inputs} or batch: 1", p.Message);
        Assert.Equal((9, 24), (p.Line, p.Column));
    }

    [Fact]
    public void Parse_input_with_group_by_is_refused()
    {
        var p = WorkflowText.Problem("""
            version: 1
            name: single
            input:
              uri: s3://in-bucket/data/
              group_by: '(?<sample>[^/]+)_R[12]\.fastq$'
            steps:
              - name: stats
                image: tools/stats:1
                command: ["stats", "{input}"]
            output:
              uri: s3://out-bucket/results/
            """);

        Assert.Equal("steps[0].command[1]", p.Path);
        Assert.Equal("uses {input}, but group_by makes units of several files; use {inputs}", p.Message);
    }

    [Fact]
    public void Parse_capture_with_batch_above_1_is_refused()
    {
        var p = WorkflowText.Problem("""
            version: 1
            name: capture
            input:
              uri: s3://in-bucket/data/
              group_by: '(?<sample>[^/]+)_R[12]\.fastq$'
              batch: 4
            steps:
              - name: stats
                image: tools/stats:1
                command: ["stats", "--sample", "{sample}", "{inputs}"]
            output:
              uri: s3://out-bucket/results/
            """);

        Assert.Equal("steps[0].command[2]", p.Path);
        Assert.Equal("uses {sample}, but batch is 4, so a task holds several values of it; use batch: 1", p.Message);
    }

    [Fact]
    public void Parse_unknown_placeholder_lists_the_known_ones()
    {
        var p = WorkflowText.Problem("""
            version: 1
            name: unknown
            input:
              uri: s3://in-bucket/data/
              group_by: '(?<sample>[^/]+)_(?<read>R[12])\.fastq$'
            steps:
              - name: stats
                image: tools/stats:1
                command: ["stats", "--name", "{smaple}", "{inputs}"]
            output:
              uri: s3://out-bucket/results/
            """);

        Assert.Equal("steps[0].command[2]", p.Path);
        Assert.Equal("uses the unknown placeholder {smaple}; known here are {inputs}, {input}, {out}, {task}, {read}, {sample}", p.Message);
        Assert.Equal((9, 34), (p.Line, p.Column));
    }

    [Fact]
    public void Parse_unknown_placeholder_in_env_is_reported_under_the_variable()
    {
        var p = WorkflowText.Problem("""
            version: 1
            name: env
            input:
              uri: s3://in-bucket/data/
            steps:
              - name: stats
                image: tools/stats:1
                command: ["stats", "{inputs}"]
                env: { SAMPLE: "{sample}" }
            output:
              uri: s3://out-bucket/results/
            """);

        Assert.Equal("steps[0].env.SAMPLE", p.Path);
        Assert.Equal("uses the unknown placeholder {sample}; known here are {inputs}, {input}, {out}, {task}", p.Message);
        Assert.Equal(9, p.Line);
    }

    [Fact]
    public void Parse_sample_placeholder_is_known_with_a_samplesheet()
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
                command: ["stats", "{inputs}"]
                env: { SAMPLE: "{sample}", OUT: "{out}/{task}" }
            output:
              uri: s3://out-bucket/results/
            """);

        Assert.Equal("{sample}", w.Steps[0].Env["SAMPLE"]);
    }

    [Fact]
    public void Parse_inputs_inside_a_larger_argument_is_refused()
    {
        var p = WorkflowText.Problem(WorkflowText.Minimal.Replace("\"{inputs}\"", "\"--in={inputs}\"", StringComparison.Ordinal));

        Assert.Equal("steps[0].command[1]", p.Path);
        Assert.Equal("uses {inputs} inside a larger argument; {inputs} must stand alone as an argument, since it becomes one argument per input", p.Message);
        Assert.Equal((8, 24), (p.Line, p.Column));
    }

    [Fact]
    public void Parse_inputs_inside_an_env_value_is_accepted()
    {
        var w = WorkflowText.Parse(WorkflowText.Minimal.Replace(
            "command: [\"stats\", \"{inputs}\"]",
            "command: [\"stats\"]\n    env: { FILES: \"{inputs}\" }",
            StringComparison.Ordinal));

        Assert.Equal("{inputs}", w.Steps[0].Env["FILES"]);
    }

    [Theory]
    [InlineData("{inputs", "'{inputs' has a '{' without a closing '}' (write '{{' for a literal brace)")]
    [InlineData("a}b", "'a}b' has a '}' without an opening '{' (write '}}' for a literal brace)")]
    [InlineData("{in-put}", "'{in-put}' has an invalid placeholder '{in-put}'")]
    public void Parse_unbalanced_braces_in_command_are_reported(string argument, string message)
    {
        var p = WorkflowText.Problem(WorkflowText.Minimal.Replace("\"{inputs}\"", $"\"{{inputs}}\", \"{argument}\"", StringComparison.Ordinal));

        Assert.Equal("steps[0].command[2]", p.Path);
        Assert.Equal(message, p.Message);
    }

    [Fact]
    public void Parse_group_by_that_is_not_a_regex_is_reported()
    {
        var p = WorkflowText.Problem("""
            version: 1
            name: regex
            input:
              uri: s3://in-bucket/data/
              group_by: '(?<sample>[^/]+_R[12]'
            steps:
              - name: stats
                image: tools/stats:1
                command: ["stats", "{inputs}"]
            output:
              uri: s3://out-bucket/results/
            """);

        Assert.Equal("input.group_by", p.Path);
        Assert.StartsWith("is not a valid .NET regular expression: ", p.Message, StringComparison.Ordinal);
        Assert.Equal((5, 13), (p.Line, p.Column));
    }

    [Fact]
    public void Parse_group_by_without_a_named_capture_shows_one()
    {
        var p = WorkflowText.Problem("""
            version: 1
            name: regex
            input:
              uri: s3://in-bucket/data/
              group_by: '([^/]+)_R[12]\.fastq$'
            steps:
              - name: stats
                image: tools/stats:1
                command: ["stats", "{inputs}"]
            output:
              uri: s3://out-bucket/results/
            """);

        Assert.Equal("input.group_by", p.Path);
        Assert.Equal("has no named capture; files are grouped by named captures such as (?<sample>[^/]+)", p.Message);
        Assert.Equal((5, 13), (p.Line, p.Column));
    }

    [Fact]
    public void Parse_samplesheet_with_group_by_warns_that_group_by_is_ignored()
    {
        var w = WorkflowText.Parse("""
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
              uri: s3://out-bucket/results/
            """);

        var warning = Assert.Single(w.Warnings);
        Assert.Equal("input.group_by", warning.Path);
        Assert.Equal("is ignored: input.samplesheet says which files form a unit", warning.Message);
        Assert.Equal((5, 13), (warning.Line, warning.Column));
    }

    [Fact]
    public void Parse_samplesheet_with_include_warns_that_include_is_ignored()
    {
        var w = WorkflowText.Parse("""
            version: 1
            name: both
            input:
              uri: s3://in-bucket/data/
              include: ["**/*.fastq"]
              samplesheet: s3://in-bucket/samples.csv
            steps:
              - name: stats
                image: tools/stats:1
                command: ["stats", "{inputs}"]
            output:
              uri: s3://out-bucket/results/
            """);

        var warning = Assert.Single(w.Warnings);
        Assert.Equal("input.include/exclude", warning.Path);
        Assert.Equal("are ignored: input.samplesheet lists the files", warning.Message);
    }

    [Fact]
    public void Parse_group_by_capture_is_not_a_placeholder_when_a_samplesheet_makes_the_units()
    {
        var p = WorkflowText.Problem("""
            version: 1
            name: both
            input:
              uri: s3://in-bucket/data/
              group_by: '(?<lane>[^/]+)_R[12]\.fastq$'
              samplesheet: s3://in-bucket/samples.csv
            steps:
              - name: stats
                image: tools/stats:1
                command: ["stats", "{lane}"]
            output:
              uri: s3://out-bucket/results/
            """);

        Assert.Equal("steps[0].command[1]", p.Path);
        Assert.StartsWith("uses the unknown placeholder {lane}", p.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("include: [\"/abs/*.fastq\"]", "input.include[0]", "'/abs/*.fastq' starts with '/'; globs are relative, e.g. '**/*.fastq'")]
    [InlineData("exclude: [\"ok/**\", \"../x\"]", "input.exclude[1]", "'../x' has a '..' segment; globs cannot leave their folder")]
    [InlineData("batch: 0", "input.batch", "is 0; a task holds at least 1 unit")]
    [InlineData("batch: many", "input.batch", "'many' is not a whole number")]
    [InlineData("include: \"**\"", "input.include", "must be a list of strings, e.g. [\"a\", \"b\"]")]
    public void Parse_bad_input_field_is_reported(string line, string path, string message)
    {
        var p = WorkflowText.Problem($"""
            version: 1
            name: input
            input:
              uri: s3://in-bucket/data/
              {line}
            steps:
              - name: stats
                image: tools/stats:1
                command: ["stats", "{"{inputs}"}"]
            output:
              uri: s3://out-bucket/results/
            """);

        Assert.Equal(path, p.Path);
        Assert.Equal(message, p.Message);
        Assert.Equal(5, p.Line);
    }

    [Theory]
    [InlineData("s3://A_Bucket/x", "'s3://A_Bucket/x' does not name a bucket: write s3://bucket/prefix/")]
    [InlineData("s3://bucket/a/../b", "'s3://bucket/a/../b' has '.' or '..' in its key prefix")]
    [InlineData("https://example.org/data", "'https://example.org/data' has an unsupported scheme; use s3://bucket/prefix, file:///abs/path, /abs/path or a path relative to the workflow file")]
    public void Parse_bad_uri_is_reported(string uri, string message)
    {
        var p = WorkflowText.Problem(WorkflowText.Minimal.Replace("s3://out-bucket/results/", uri, StringComparison.Ordinal));

        Assert.Equal("output.uri", p.Path);
        Assert.Equal(message, p.Message);
        Assert.Equal((10, 8), (p.Line, p.Column));
    }

    [Fact]
    public void Parse_bad_on_error_names_the_choices()
    {
        var p = WorkflowText.Problem(WorkflowText.Minimal + "\non_error: stop\n");

        Assert.Equal("on_error", p.Path);
        Assert.Equal("'stop' is not allowed; write 'continue' or 'fail'", p.Message);
    }

    [Fact]
    public void Parse_bad_trigger_settle_is_reported()
    {
        var p = WorkflowText.Problem(WorkflowText.Minimal + """

            trigger:
              uri: s3://incoming/
              settle: a while
            """);

        Assert.Equal("trigger.settle", p.Path);
        Assert.Equal("'a while' is not a duration (e.g. 30s, 5m)", p.Message);
        Assert.Equal((13, 11), (p.Line, p.Column));
    }

    [Fact]
    public void Parse_wrong_shapes_are_reported()
    {
        var problems = WorkflowText.Problems("""
            version: 1
            name: [not, a, name]
            input: s3://in-bucket/data/
            steps:
              - just a string
            output:
              uri: s3://out-bucket/results/
            """);

        Assert.Equal(
            [
                ("name", "must be a single value, not a list"),
                ("input", "must be a mapping of fields"),
                ("steps[0]", "must be a mapping with name, image and command"),
            ],
            problems.Select(p => (p.Path, p.Message)));
    }

    [Fact]
    public void Parse_unclosed_list_across_lines_is_invalid_yaml_at_its_bracket()
    {
        var p = WorkflowText.Problem("""
            version: 1
            name: broken
            input:
              uri: s3://in-bucket/data/
              include: ["**/*.fastq"
            steps:
              - name: stats
            """);

        Assert.Equal("(file)", p.Path);
        Assert.Equal("not valid YAML: the '[' opened here is never closed; look for a missing ']' or ','", p.Message);
        Assert.Equal((5, 12), (p.Line, p.Column));
    }

    [Fact]
    public void Parse_unclosed_list_on_the_last_line_is_invalid_yaml_at_its_bracket()
    {
        var p = WorkflowText.Problem("version: 1\ninput: [a, b\n");

        Assert.Equal("(file)", p.Path);
        Assert.Equal("not valid YAML: the '[' opened here is never closed; look for a missing ']' or ',' (While parsing a flow sequence, did not find expected ',' or ']')", p.Message);
        Assert.Equal((2, 8), (p.Line, p.Column));
    }

    [Fact]
    public void Parse_mapping_inside_a_plain_value_is_invalid_yaml_at_the_value()
    {
        var p = WorkflowText.Problem("version: 1\nname: a: b\n");

        Assert.StartsWith("not valid YAML: ", p.Message, StringComparison.Ordinal);
        Assert.Equal((2, 8), (p.Line, p.Column));
    }

    [Fact]
    public void Parse_duplicate_key_is_invalid_yaml_at_the_second_key()
    {
        var p = WorkflowText.Problem(WorkflowText.Minimal + "\nname: again\n");

        Assert.Equal("(file)", p.Path);
        Assert.Equal("not valid YAML: the key 'name' appears twice in this mapping; keep one", p.Message);
        Assert.Equal((11, 1), (p.Line, p.Column));
    }

    [Fact]
    public void Parse_tab_indentation_is_invalid_yaml_at_the_tab()
    {
        // YamlDotNet gives this error no mark (line 1, column 1): the scanner's place is the tab's.
        var p = WorkflowText.Problem("version: 1\nname: tabs\ninput:\n\turi: s3://in-bucket/data/\n");

        Assert.Equal("(file)", p.Path);
        Assert.Equal("not valid YAML: a tab is used as indentation here; YAML indents with spaces only (While scanning a mapping, found invalid tab as indentation)", p.Message);
        Assert.Equal((4, 1), (p.Line, p.Column));
    }

    [Theory]
    [InlineData("")]
    [InlineData("   \n\n")]
    [InlineData("# only a comment\n")]
    public void Parse_empty_file_says_how_a_workflow_starts(string yaml)
    {
        var p = WorkflowText.Problem(yaml);

        Assert.Equal("(file)", p.Path);
        Assert.Equal("the file is empty; a workflow starts with 'version: 1'", p.Message);
        Assert.Equal("(file): the file is empty; a workflow starts with 'version: 1'", p.ToString());
    }

    [Fact]
    public void Parse_file_that_is_a_list_asks_for_a_mapping()
    {
        var p = WorkflowText.Problem("- version: 1\n");

        Assert.Equal("(file)", p.Path);
        Assert.Equal("must be a mapping of fields (version, name, input, steps, ...)", p.Message);
        Assert.Equal((1, 1), (p.Line, p.Column));
    }

    [Fact]
    public void Parse_two_documents_in_one_file_are_refused()
    {
        var p = WorkflowText.Problem(WorkflowText.Minimal + "\n---\nversion: 1\n");

        Assert.Equal("(file)", p.Path);
        Assert.Equal("holds more than one YAML document (a second one starts here); put one workflow in each file", p.Message);
        Assert.Equal((11, 1), (p.Line, p.Column)); // the '---' to remove, not the second document's first key
    }

    [Fact]
    public void Parse_reports_every_problem_of_a_file_at_once()
    {
        var e = Assert.Throws<WorkflowInvalidException>(() => WorkflowText.Parse("""
            version: 1
            name: Many_Problems
            input:
              uri: s3://in-bucket/data/
              batch: 10
              group_by: '(unclosed'
            steps:
              - name: stats
                image: tools/stats:1
                command: ["stats", "{input}"]
                resources: { memory: 12XB }
              - name: stats
                image: tools/stats:1
                command: ["stats", "{inputs}"]
                retires: 1
            gather:
              - name: table
                from: nope/*.tsv
                header: false
            ouput:
              uri: s3://out-bucket/results/
            """));

        // Every problem, in any order; each at its own line.
        Assert.Equal(
            [
                ("output", 1),
                ("name", 2),
                ("input.group_by", 6),
                ("steps[0].command[1]", 10),
                ("steps[0].resources.memory", 11),
                ("steps[1].name", 12),
                ("steps[1].retires", 15),
                ("gather[0].columns", 17),
                ("gather[0].from", 18),
                ("ouput", 20),
            ],
            e.Problems.OrderBy(p => p.Line).Select(p => (p.Path, p.Line)));
        Assert.Contains("ouput: is not a known field; did you mean 'output'?", e.Message, StringComparison.Ordinal);
        Assert.StartsWith("test.yaml is not a valid workflow (10 problems):", e.Message, StringComparison.Ordinal);
        Assert.False(e.RetryHelps);
    }
}
