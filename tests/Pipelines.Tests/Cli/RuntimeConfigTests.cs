using System.Text.Json;

namespace Pipelines.Tests.Cli;

/// <summary>
/// The runtime settings `pipelines` ships with (Pipelines.Cli.csproj, landed in
/// pipelines.runtimeconfig.json): each is a decision with its measurement (docs/decisions.md), and
/// a build that dropped one would change every run's cost without a word.
/// </summary>
[Unit]
public sealed class RuntimeConfigTests
{
    [Fact]
    public void The_cli_runs_without_the_instrumented_jit_tier_and_without_the_thread_pools_spin()
    {
        var path = Path.Combine(AppContext.BaseDirectory, "pipelines.runtimeconfig.json");
        using var config = JsonDocument.Parse(File.ReadAllText(path));
        var options = config.RootElement.GetProperty("runtimeOptions").GetProperty("configProperties");

        Assert.False(options.GetProperty("System.Runtime.TieredPGO").GetBoolean());
        Assert.Equal(0, options.GetProperty("System.Threading.ThreadPool.UnfairSemaphoreSpinLimit").GetInt32());
    }
}
