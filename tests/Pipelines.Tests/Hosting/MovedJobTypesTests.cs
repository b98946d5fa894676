using Hangfire;
using Hangfire.Storage;
using Pipelines.Queue;
using Pipelines.Tests.Support;

namespace Pipelines.Tests.Hosting;

/// <summary>
/// A job queued by an older build names the class of its time: one that moved since is still
/// delivered (by the class that took its place), not failed to load with its work left queued.
/// </summary>
[Unit]
public class MovedJobTypesTests
{
    [Fact]
    public void An_async_invocation_queued_as_a_FunctionJob_by_an_older_build_is_delivered_by_InvocationJob()
    {
        // The engine's hosts set this resolver (EngineHost's Hangfire configuration); set here as they do.
        GlobalConfiguration.Configuration.UseTypeResolver(MovedJobTypes.Resolve);

        // As Hangfire.PostgreSql holds a job queued by the build before 2026-12-06 (simple assembly names).
        var old = new InvocationData(
            "Pipelines.Functions.FunctionJob, Pipelines.Engine",
            "RunAsync",
            "[\"System.String\",\"Hangfire.Server.PerformContext, Hangfire.Core\",\"System.Threading.CancellationToken\"]",
            "[\"\\\"inv-1\\\"\",null,null]");

        var job = old.DeserializeJob();

        Assert.Equal(typeof(InvocationJob), job.Type);
        Assert.Equal(nameof(InvocationJob.RunAsync), job.Method.Name);
        Assert.Equal("inv-1", job.Args[0]);
    }

    [Fact]
    public void Names_that_did_not_move_resolve_as_before()
    {
        Assert.Equal(typeof(TaskJob), MovedJobTypes.Resolve("Pipelines.Queue.TaskJob, Pipelines.Engine"));
        Assert.Throws<TypeLoadException>(() => MovedJobTypes.Resolve("Pipelines.Functions.NoSuchJob, Pipelines.Engine"));
    }
}
