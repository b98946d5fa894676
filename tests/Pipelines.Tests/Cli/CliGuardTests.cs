using Pipelines.Model;

namespace Pipelines.Tests.Cli;

/// <summary>The CLI's one place where failures become a line on stderr and an exit code.</summary>
[Unit]
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

    [Fact]
    public async Task Guard_gives_each_kind_of_ending_its_own_code()
    {
        var notFound = await GuardAsync(() => throw new Pipelines.Cli.NotFoundException("no run r in PostgreSQL"), verbose: false);
        var outage = await GuardAsync(() => throw new PipelinesException("cannot reach the S3 endpoint", retryHelps: true), verbose: false);
        var filter = await GuardAsync(() => throw new Pipelines.Runs.RunCatalog.FilterException("state 'x' is not one of ..."), verbose: false);
        var stopped = await GuardAsync(() => throw new OperationCanceledException(), verbose: false);

        Assert.Equal((4, 5, 2, 130), (notFound.Code, outage.Code, filter.Code, stopped.Code));
        Assert.Equal("error: no run r in PostgreSQL" + Environment.NewLine, notFound.Stderr);
        Assert.Equal(
            [0, 1, 2, 3, 4, 5, 6, 130],
            new[] { Pipelines.Cli.Cli.Ok, Pipelines.Cli.Cli.Failed, Pipelines.Cli.Cli.Invalid, Pipelines.Cli.Cli.Differs, Pipelines.Cli.Cli.NotFound, Pipelines.Cli.Cli.Unavailable, Pipelines.Cli.Cli.Cancelled, Pipelines.Cli.Cli.Interrupted });
        Assert.Equal((0, 1, 6, 0), (Pipelines.Cli.Cli.Of(Pipelines.RunStore.RunState.Succeeded), Pipelines.Cli.Cli.Of(Pipelines.RunStore.RunState.Failed), Pipelines.Cli.Cli.Of(Pipelines.RunStore.RunState.Cancelled), Pipelines.Cli.Cli.Of(Pipelines.RunStore.RunState.Running)));
    }

    private static async Task<(int Code, string Stderr)> GuardAsync(Func<Task<int>> body, bool verbose)
    {
        using var captured = new StringWriter();
        var code = await Pipelines.Cli.Cli.Guard(body, verbose, captured);
        return (code, captured.ToString());
    }
}
