using Pipelines.Model;

namespace Pipelines.Tests.Model;

[Unit]
public sealed class PlaceholdersTests
{
    private static readonly PlaceholderValues TwoInputs = new(
        ["/in/a/S1_R1.fastq", "/in/a/S1_R2.fastq"],
        "0123456789abcdef01234567",
        new Dictionary<string, string> { ["sample"] = "S1" });

    private static readonly PlaceholderValues OneInput = TwoInputs with { InputPaths = ["/in/x.fastq"] };

    [Fact]
    public void ExpandArgument_inputs_alone_becomes_one_argument_per_input()
    {
        Assert.Equal(["/in/a/S1_R1.fastq", "/in/a/S1_R2.fastq"], Placeholders.ExpandArgument("{inputs}", TwoInputs));
    }

    [Fact]
    public void ExpandArgument_inputs_with_no_inputs_becomes_no_argument()
    {
        Assert.Empty(Placeholders.ExpandArgument("{inputs}", TwoInputs with { InputPaths = [] }));
    }

    [Fact]
    public void ExpandArgument_other_text_stays_one_argument()
    {
        Assert.Equal(["/out/S1.tsv"], Placeholders.ExpandArgument("{out}/{sample}.tsv", TwoInputs));
    }

    [Fact]
    public void Expand_inputs_inside_a_text_joins_the_paths_with_spaces()
    {
        Assert.Equal("FILES=/in/a/S1_R1.fastq /in/a/S1_R2.fastq", Placeholders.Expand("FILES={inputs}", TwoInputs));
    }

    [Fact]
    public void Expand_input_is_the_single_path()
    {
        Assert.Equal("--in=/in/x.fastq", Placeholders.Expand("--in={input}", OneInput));
    }

    [Fact]
    public void Expand_input_with_two_inputs_is_an_error_retry_cannot_fix()
    {
        var e = Assert.Throws<PipelinesException>(() => Placeholders.Expand("{input}", TwoInputs));

        Assert.Equal("{input} needs exactly one input, this task has 2", e.Message);
        Assert.False(e.RetryHelps);
    }

    [Fact]
    public void Expand_out_task_and_captures()
    {
        Assert.Equal(
            "/out/0123456789abcdef01234567/S1.tsv",
            Placeholders.Expand("{out}/{task}/{sample}.tsv", TwoInputs));
    }

    [Fact]
    public void Expand_capture_without_value_is_an_error()
    {
        var e = Assert.Throws<PipelinesException>(() => Placeholders.Expand("{lane}", TwoInputs));

        Assert.Equal("placeholder {lane} has no value in this task", e.Message);
    }

    [Theory]
    [InlineData("{{literal}}", "{literal}")]
    [InlineData("awk '{{print $1}}'", "awk '{print $1}'")]
    [InlineData("{{{sample}}}", "{S1}")]
    [InlineData("{{input}}", "{input}")]
    [InlineData("no braces", "no braces")]
    [InlineData("", "")]
    public void Expand_doubled_braces_are_literal_braces(string text, string expanded)
    {
        Assert.Equal(expanded, Placeholders.Expand(text, TwoInputs));
    }

    [Fact]
    public void Scan_lists_the_names_used_in_order()
    {
        var (names, error) = Placeholders.Scan("{out}/{sample}_{task}.tsv {inputs}");

        Assert.Null(error);
        Assert.Equal(["out", "sample", "task", "inputs"], names);
    }

    [Theory]
    [InlineData("{{input}}")]
    [InlineData("awk '{{print $1}}'")]
    [InlineData("plain")]
    public void Scan_escaped_braces_name_nothing(string text)
    {
        var (names, error) = Placeholders.Scan(text);

        Assert.Null(error);
        Assert.Empty(names);
    }

    [Theory]
    [InlineData("{inputs", "'{inputs' has a '{' without a closing '}' (write '{{' for a literal brace)")]
    [InlineData("awk '{print $1}'", "'awk '{print $1}'' has an invalid placeholder '{print $1}'")]
    [InlineData("}", "'}' has a '}' without an opening '{' (write '}}' for a literal brace)")]
    [InlineData("{}", "'{}' has an invalid placeholder '{}'")]
    [InlineData("{a-b}", "'{a-b}' has an invalid placeholder '{a-b}'")]
    [InlineData("{a{b}", "'{a{b}' has an invalid placeholder '{a{b}'")]
    public void Scan_reports_unbalanced_or_invalid_braces(string text, string message)
    {
        Assert.Equal(message, Placeholders.Scan(text).Error);
    }
}
