using Pipelines.Model;

namespace Pipelines.Tests.Model;

/// <summary>The CLI's <c>--set key.path=value</c>, applied before validation.</summary>
[Unit]
public sealed class WorkflowOverrideTests
{
    [Fact]
    public void Set_input_batch_replaces_the_files_value()
    {
        var w = WorkflowText.Parse(WorkflowText.Minimal, "input.batch=10");

        Assert.Equal(10, w.Input.Batch);
    }

    [Fact]
    public void Set_step_memory_by_index_creates_the_resources_mapping()
    {
        var w = WorkflowText.Parse(WorkflowText.Minimal, "steps[0].resources.memory=1Gi");

        Assert.Equal(1024L * 1024 * 1024, w.Steps[0].Resources.MemoryBytes);
        Assert.Equal(Resources.Default.Timeout, w.Steps[0].Resources.Timeout);
    }

    [Fact]
    public void Set_output_uri_to_an_absolute_path()
    {
        var w = WorkflowText.Parse(WorkflowText.Minimal, "output.uri=/tmp/x");

        Assert.Equal("/tmp/x", w.Output.Uri);
    }

    [Fact]
    public void Set_relative_uri_resolves_against_the_base_directory()
    {
        var w = WorkflowText.Parse(WorkflowText.Minimal, "input.uri=data/");

        Assert.Equal("/work/flows/data/", w.Input.Uri);
    }

    [Fact]
    public void Set_list_value_is_read_as_yaml()
    {
        var w = WorkflowText.Parse(WorkflowText.Minimal, "input.include=[\"**/*.fq\", \"**/*.fastq\"]");

        Assert.Equal(["**/*.fq", "**/*.fastq"], w.Input.Include);
    }

    [Fact]
    public void Set_value_nested_past_the_files_limit_is_text_not_a_stack_overflow()
    {
        // The API's "set" takes any length: 200,000 '[' overflowed the stack while YamlDotNet read
        // them and ended the server. Past the nesting limit the value is not YAML, so it is text.
        var deep = new string('[', 200_000);

        var w = WorkflowText.Parse(WorkflowText.Minimal, "description=" + deep);

        Assert.Equal(deep, w.Description);
    }

    [Fact]
    public void Set_several_overrides_apply_in_order()
    {
        var w = WorkflowText.Parse(WorkflowText.Minimal, "input.batch=2", "on_error=fail", "input.batch=3");

        Assert.Equal(3, w.Input.Batch);
        Assert.Equal(OnError.Fail, w.OnError);
    }

    [Fact]
    public void Set_value_may_hold_an_equals_sign()
    {
        var w = WorkflowText.Parse(WorkflowText.Minimal, "description=a=b");

        Assert.Equal("a=b", w.Description);
    }

    [Fact]
    public void Set_bad_value_is_reported_as_coming_from_set()
    {
        var p = WorkflowText.Problem(WorkflowText.Minimal, "steps[0].resources.memory=12XB");

        Assert.Equal("steps[0].resources.memory", p.Path);
        Assert.Equal("'12XB' is not a size (e.g. 512Mi, 2Gi, 1G) (from --set steps[0].resources.memory)", p.Message);
        Assert.Equal((0, 0), (p.Line, p.Column));
        Assert.Equal("steps[0].resources.memory: '12XB' is not a size (e.g. 512Mi, 2Gi, 1G) (from --set steps[0].resources.memory)", p.ToString());
    }

    [Fact]
    public void Set_bad_batch_is_reported_as_coming_from_set()
    {
        var p = WorkflowText.Problem(WorkflowText.Minimal, "input.batch=ten");

        Assert.Equal("input.batch", p.Path);
        Assert.Equal("'ten' is not a whole number (from --set input.batch)", p.Message);
        Assert.Equal(0, p.Line);
    }

    [Fact]
    public void Set_misspelt_field_is_reported_as_coming_from_set()
    {
        var p = WorkflowText.Problem(WorkflowText.Minimal, "input.bacth=10");

        Assert.Equal("input.bacth", p.Path);
        Assert.Equal("is not a known field; did you mean 'batch'? (from --set input.bacth)", p.Message);
        Assert.Equal(0, p.Line);
    }

    [Fact]
    public void Set_field_of_a_missing_section_reports_the_rest_as_coming_from_set()
    {
        var p = WorkflowText.Problem(WorkflowText.Minimal, "trigger.settle=5s");

        Assert.Equal("trigger.uri", p.Path);
        Assert.Equal("is missing (from --set trigger.settle)", p.Message);
        Assert.Equal(0, p.Line);
    }

    [Theory]
    [InlineData("input.batch", "--set input.batch", "must look like key.path=value, e.g. input.batch=10")]
    [InlineData("=10", "--set =10", "must look like key.path=value, e.g. input.batch=10")]
    [InlineData("steps[x].name=a", "--set steps[x].name", "is not a field path; write e.g. input.batch or steps[0].resources.memory")]
    [InlineData("steps[3].name=a", "--set steps[3].name", "there is no item [3] to set")]
    [InlineData("name.first=a", "--set name.first", "'first' is not inside a mapping")]
    [InlineData("input[0]=a", "--set input[0]", "there is no item [0] to set")]
    [InlineData("steps[99999999999].image=x", "--set steps[99999999999].image", "there is no item [99999999999] to set")]
    [InlineData("steps[-1].image=x", "--set steps[-1].image", "is not a field path; write e.g. input.batch or steps[0].resources.memory")]
    [InlineData("nonsense", "--set nonsense", "must look like key.path=value, e.g. input.batch=10")]
    [InlineData("a..b=1", "--set a..b", "is not a field path; write e.g. input.batch or steps[0].resources.memory")]
    [InlineData(".input.batch=1", "--set .input.batch", "is not a field path; write e.g. input.batch or steps[0].resources.memory")]
    [InlineData("input.batch.=1", "--set input.batch.", "is not a field path; write e.g. input.batch or steps[0].resources.memory")]
    [InlineData("[0]=1", "--set [0]", "is not a field path; write e.g. input.batch or steps[0].resources.memory")]
    public void Set_bad_path_is_reported(string assignment, string path, string message)
    {
        var p = WorkflowText.Problem(WorkflowText.Minimal, assignment);

        Assert.Equal(path, p.Path);
        Assert.Equal(message, p.Message);
        Assert.Equal(0, p.Line);
    }

    [Fact]
    public void Set_unclosed_list_value_is_taken_as_text()
    {
        var p = WorkflowText.Problem(WorkflowText.Minimal, "input.include=[\"**\"");

        Assert.Equal("input.include", p.Path);
        Assert.Equal("must be a list of strings, e.g. [\"a\", \"b\"] (from --set input.include)", p.Message);
    }

    [Fact]
    public void Set_problems_add_to_the_files_own_problems()
    {
        var problems = WorkflowText.Problems(WorkflowText.Minimal.Replace("name: minimal", "name: Bad", StringComparison.Ordinal), "input.batch=0");

        Assert.Equal(["--set", "file"], problems.Select(p => p.Line == 0 ? "--set" : "file").Order(StringComparer.Ordinal));
    }
}
