using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Pipelines.Containers;
using Pipelines.Hosting;
using Pipelines.Runs;
using Pipelines.RunStore;
using Pipelines.Tests.Support;

namespace Pipelines.Tests.Worker;

/// <summary>
/// Whatever a step's run throws, its task and its run end, and the end says why: an outage is
/// retried by Hangfire and ends the task when retries run out; anything else ends it at once.
/// The engine runs in this process (embedded mode, real Hangfire.InMemory workers) with a
/// container runtime scripted to throw, since a real engine cannot be made to throw on cue.
/// </summary>
[Collection(InProcessHangfire.Name)]
[Integration]
public sealed class EveryTaskEndsTests : IDisposable
{
    private readonly TempFolder _temp = new();

    [Fact]
    public async Task An_outage_that_outlasts_the_retries_ends_the_task_failed_with_the_outage_as_reason()
    {
        var runtime = new ThrowingRuntime(() => new PipelinesException("cannot reach the Docker engine at unix:///nowhere.sock: Connection refused", retryHelps: true));
        var (run, tasks) = await RunToEndAsync(runtime);

        Assert.Equal(RunState.Failed, run.State);
        var task = Assert.Single(tasks);
        Assert.Equal(TaskState.Failed, task.State);
        Assert.Equal("gave up after 2 deliveries: cannot reach the Docker engine at unix:///nowhere.sock: Connection refused", task.Error);

        // Each delivery tried twice in-process (after 1 s; a 2 s wait would pass Worker:OutageWait).
        Assert.Equal(4, runtime.Calls);
    }

    [Fact]
    public async Task A_short_outage_is_waited_out_in_the_worker_and_the_task_succeeds_without_a_retry()
    {
        var runtime = new ThrowingRuntime(() => new PipelinesException("cannot reach the Docker engine at unix:///nowhere.sock: Connection refused", retryHelps: true), failures: 2);
        var (run, tasks) = await RunToEndAsync(runtime, outageWait: "00:01:00");

        Assert.Equal(RunState.Succeeded, run.State);
        Assert.Equal(TaskState.Succeeded, Assert.Single(tasks).State);
        Assert.Equal(3, runtime.Calls);
    }

    [Fact]
    public async Task An_unexpected_exception_ends_the_task_failed_at_once_with_its_type_and_message()
    {
        var runtime = new ThrowingRuntime(() => new InvalidOperationException("the runtime broke"));
        var (run, tasks) = await RunToEndAsync(runtime);

        Assert.Equal(RunState.Failed, run.State);
        var task = Assert.Single(tasks);
        Assert.Equal(TaskState.Failed, task.State);
        Assert.Equal("InvalidOperationException: the runtime broke", task.Error);
        Assert.Equal(1, runtime.Calls);
    }

    private async Task<(RunRecord Run, IReadOnlyList<TaskRecord> Tasks)> RunToEndAsync(IContainerRuntime runtime, string outageWait = "00:00:02")
    {
        var input = _temp.Combine("in");
        Directory.CreateDirectory(input);
        await File.WriteAllTextAsync(Path.Combine(input, "a.txt"), "a\n");
        var yaml = $"""
            version: 1
            name: ends
            input:
              uri: {input}
            steps:
              - name: s
                image: scripted:1
                command: ["true"]
                reuse: false
            output:
              uri: {_temp.Combine("out")}
            """;

        // Only these values: the suite's PIPELINES_POSTGRES must not turn this into the PostgreSQL mode.
        var config = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Hangfire:Retries"] = "1",
            ["Hangfire:RetryDelays:0"] = "1",
            ["Worker:Scratch"] = _temp.Combine("scratch"),
            ["Worker:Concurrency"] = "1",
            ["Worker:OutageWait"] = outageWait,
        }).Build();
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Configuration.AddConfiguration(config);
        builder.Services.AddPipelinesEngine(config, worker: true);
        builder.Services.AddSingleton(runtime);
        using var host = builder.Build();
        await host.StartAsync();
        try
        {
            var submitted = await host.Services.GetRequiredService<RunSubmitter>().SubmitAsync(yaml, "ends.yaml", _temp.Path, [], CancellationToken.None);
            var store = host.Services.GetRequiredService<IRunStore>();
            var deadline = DateTime.UtcNow.AddSeconds(180);   // an upper bound: on a loaded machine a retry waits for the schedule poller
            RunRecord? run;
            while ((run = await store.GetRunAsync(submitted.RunId, CancellationToken.None)) is { State: var s } && !s.IsTerminal() && DateTime.UtcNow < deadline)
            {
                await Task.Delay(100);
            }

            Assert.True(run?.State.IsTerminal(), $"run still {run?.State} after 180 s");
            return (run!, await store.GetTasksAsync(submitted.RunId, CancellationToken.None));
        }
        finally
        {
            await host.StopAsync();
        }
    }

    public void Dispose() => _temp.Dispose();

    /// <summary>A container runtime whose first <paramref name="failures"/> runs throw what it is given, and the rest succeed.</summary>
    private sealed class ThrowingRuntime(Func<Exception> error, int failures = int.MaxValue) : IContainerRuntime
    {
        private int _calls;

        public int Calls => _calls;

        public Task<string> ResolveImageAsync(string image, CancellationToken cancellationToken) =>
            Task.FromResult("sha256:" + new string('0', 64));

        public Task<ContainerResult> RunAsync(ContainerSpec spec, CancellationToken cancellationToken)
        {
            return Interlocked.Increment(ref _calls) <= failures
                ? throw error()
                : Task.FromResult(new ContainerResult(0, false, false, "", TimeSpan.Zero));
        }
    }
}
