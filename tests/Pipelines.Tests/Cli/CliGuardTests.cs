using Pipelines.Model;

namespace Pipelines.Tests.Cli;

/// <summary>The CLI's one place where failures become a line on stderr and an exit code.</summary>
public sealed class CliGuardTests
{
    [Fact]
    public async Task Guard_prints_an_unexpected_exception_as_one_line_with_a_hint_to_use_verbose()
    {
        var (code, stderr) = await GuardAsync(() => throw new InvalidOperationException("the listing\nbroke"), verbose: false);

        Assert.Equal(1, code);
        Assert.Equal("error: unexpected InvalidOperationException: the listing broke (run again with --verbose to see where it came from)" + Environment.NewLine, stderr);
    }

    [Fact]
    public async Task Guard_with_verbose_adds_the_stack_trace_after_the_line()
    {
        var (code, stderr) = await GuardAsync(() => throw new InvalidOperationException("broke"), verbose: true);

        Assert.Equal(1, code);
        Assert.StartsWith("error: unexpected InvalidOperationException: broke" + Environment.NewLine, stderr, StringComparison.Ordinal);
        Assert.Contains("   at ", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Guard_prints_a_file_system_refusal_as_one_line_exit_1()
    {
        var (code, stderr) = await GuardAsync(() => throw new UnauthorizedAccessException("Access to the path '/x' is denied."), verbose: false);

        Assert.Equal(1, code);
        Assert.Equal("error: Access to the path '/x' is denied." + Environment.NewLine, stderr);
    }

    [Fact]
    public async Task Guard_gives_exit_2_for_an_invalid_workflow_and_1_for_an_engine_failure()
    {
        var invalid = await GuardAsync(() => throw new WorkflowInvalidException("wf.yaml", [new WorkflowProblem("input.batch", "is 0", 3, 10)]), verbose: false);
        var failed = await GuardAsync(() => throw new PipelinesException("the bucket does not exist", retryHelps: false), verbose: false);

        Assert.Equal(2, invalid.Code);
        Assert.Equal(1, failed.Code);
        Assert.Equal("error: the bucket does not exist" + Environment.NewLine, failed.Stderr);
    }

    private static async Task<(int Code, string Stderr)> GuardAsync(Func<Task<int>> body, bool verbose)
    {
        using var captured = new StringWriter();
        var code = await Pipelines.Cli.Cli.Guard(body, verbose, captured);
        return (code, captured.ToString());
    }
}
