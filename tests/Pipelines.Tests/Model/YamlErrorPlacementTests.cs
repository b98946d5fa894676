using Pipelines.Functions;
using Pipelines.Model;
using Pipelines.Tests.Support;

namespace Pipelines.Tests.Model;

/// <summary>
/// A YAML fault in a workflow or a function file is reported at its own line and column (one
/// home: Model/YamlLoader): a corpus of malformed files (MalformedYaml/, each with its place in
/// expected.tsv), and a tab put into the indentation of every line of valid files.
/// </summary>
[Unit]
public sealed class YamlErrorPlacementTests
{
    private static readonly string Corpus = Path.Combine(TestEnvironment.RepoRoot, "tests", "Pipelines.Tests", "Model", "MalformedYaml");

    internal const string Function = """
        name: thumbnail
        image: pipelines-samples/pair-check:1
        # the command, as a block list
        command:
          - thumb
          - "{input}"
        env: { LC_ALL: C }
        resources:
          cpus: 0.5
          timeout: 5s
        output: thumb.png
        """;

    internal const string Workflow = """
        version: 1
        name: tabs
        # a comment
        input:
          uri: s3://in-bucket/data/
          include: ["*.fastq", "*.fq"]
        steps:
          - name: stats
            image: tools/stats:1
            command: ["stats", "{inputs}"]
            env: {A: "1", B: x}
            resources:
              memory: 1Gi
          - name: two
            image: tools/x:1
            command:
              - a
              - b
        output:
          uri: s3://out-bucket/results/
        """;

    public static TheoryData<string, int, int, string> MalformedFiles()
    {
        var data = new TheoryData<string, int, int, string>();
        foreach (var line in File.ReadLines(Path.Combine(Corpus, "expected.tsv")).Where(l => l.Length > 0 && !l.StartsWith('#')))
        {
            var cells = line.Split('\t');
            data.Add(cells[0], int.Parse(cells[1], System.Globalization.CultureInfo.InvariantCulture), int.Parse(cells[2], System.Globalization.CultureInfo.InvariantCulture), cells[3]);
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(MalformedFiles))]
    public void A_malformed_workflow_file_is_refused_at_the_faults_own_line_and_column(string file, int line, int column, string says)
    {
        var yaml = File.ReadAllText(Path.Combine(Corpus, file));

        var p = Assert.Single(Assert.Throws<WorkflowInvalidException>(() => WorkflowParser.Parse(yaml, file, "/work/flows")).Problems);

        Assert.Equal("(file)", p.Path);
        Assert.Equal((line, column), (p.Line, p.Column));
        Assert.StartsWith("not valid YAML: ", p.Message, StringComparison.Ordinal);
        Assert.Contains(says, p.Message, StringComparison.Ordinal);
    }

    [Theory]
    [MemberData(nameof(MalformedFiles))]
    public void A_malformed_function_file_is_refused_at_the_same_place(string file, int line, int column, string says)
    {
        var yaml = File.ReadAllText(Path.Combine(Corpus, file));

        var p = Assert.Single(Assert.Throws<FunctionInvalidException>(() => FunctionParser.Parse(yaml, file)).Problems);

        Assert.Equal((line, column, true), (p.Line, p.Column, p.Message.Contains(says, StringComparison.Ordinal)));
    }

    [Theory]
    [InlineData("[")]
    [InlineData("{a: ")]
    public void Nesting_that_would_overflow_the_stack_is_refused_at_the_level_past_the_limit(string opener)
    {
        // 200,000 levels: YamlDotNet read them by recursion, and the stack overflow ended the
        // process (the server's deploy and submit routes with it), which no catch can stop. The
        // root mapping is the first level, so the 64th opener is the 65th level.
        var yaml = "name: x\nimage: " + string.Concat(Enumerable.Repeat(opener, 200_000)) + "\n";

        var workflow = Assert.Single(Assert.Throws<WorkflowInvalidException>(() => WorkflowParser.Parse(yaml, "deep.yaml", "/work/flows")).Problems);
        var function = Assert.Single(Assert.Throws<FunctionInvalidException>(() => FunctionParser.Parse(yaml, "deep.yaml")).Problems);

        Assert.Equal((2, 8 + (63 * opener.Length), true), (workflow.Line, workflow.Column, workflow.Message.Contains("nest more than 64 deep", StringComparison.Ordinal)));
        Assert.Equal(workflow, function);
    }

    [Fact]
    public void Every_file_of_the_corpus_is_in_the_list_of_expected_places()
    {
        var listed = MalformedFiles().Select(row => (string)row[0]).Order(StringComparer.Ordinal);

        Assert.Equal(Directory.GetFiles(Corpus, "*.yaml").Select(Path.GetFileName).Order(StringComparer.Ordinal), listed);
    }

    public static TheoryData<string, int, string> TabbedLines()
    {
        var data = new TheoryData<string, int, string>();
        foreach (var (kind, text) in new[] { ("workflow", Workflow), ("function", Function) })
        {
            var lines = text.Split('\n');
            for (var i = 0; i < lines.Length; i++)
            {
                data.Add(kind, i + 1, "tab-for-indentation");
                data.Add(kind, i + 1, "tab-before-indentation");
                if (lines[i].StartsWith(' '))
                {
                    data.Add(kind, i + 1, "tab-as-last-space");
                }
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(TabbedLines))]
    public void A_tab_in_the_indentation_of_any_line_is_reported_at_that_tab(string kind, int line, string how)
    {
        var lines = (kind == "workflow" ? Workflow : Function).Split('\n');
        var indent = lines[line - 1].Length - lines[line - 1].TrimStart(' ').Length;
        (lines[line - 1], var column) = how switch
        {
            "tab-for-indentation" => ("\t" + lines[line - 1].TrimStart(' '), 1),
            "tab-before-indentation" => ("\t" + lines[line - 1], 1),
            _ => (lines[line - 1][..(indent - 1)] + "\t" + lines[line - 1][indent..], indent),
        };
        var yaml = string.Join('\n', lines);

        var problems = kind == "workflow"
            ? Assert.Throws<WorkflowInvalidException>(() => WorkflowParser.Parse(yaml, "t.yaml", "/work/flows")).Problems
            : Assert.Throws<FunctionInvalidException>(() => FunctionParser.Parse(yaml, "t.yaml")).Problems;

        var p = Assert.Single(problems);
        Assert.Equal((line, column), (p.Line, p.Column));
        Assert.StartsWith("not valid YAML: a tab is used as indentation here; YAML indents with spaces only", p.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Tabs_where_YAML_allows_them_are_accepted()
    {
        // Between the items of a flow list across lines, after a value's colon, and inside a block scalar's text.
        var yaml = WorkflowText.Minimal.Replace("command: [\"stats\", \"{inputs}\"]", "command: [\"stats\",\n\t\"{inputs}\"]\n    env:\t{ A: \"1\" }", StringComparison.Ordinal)
            + "\ndescription: |\n  first\n  \tsecond\n";

        var w = WorkflowText.Parse(yaml);

        Assert.Equal(["stats", "{inputs}"], w.Steps[0].Command);
        Assert.Equal("first\n\tsecond\n", w.Description);
    }
}
