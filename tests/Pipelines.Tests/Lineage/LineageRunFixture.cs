using Pipelines.Storage;
using Pipelines.Tests.EndToEnd;
using Pipelines.Tests.Support;

namespace Pipelines.Tests.Lineage;

/// <summary>One real embedded run of the sample workflow (local input and output, the real Docker engine), shared by the lineage, crate and report tests (<see cref="LineageCollection"/>).</summary>
public sealed class LineageRunFixture : IAsyncLifetime
{
    public TempFolder Temp { get; } = new();

    public Dictionary<string, string?> Env { get; private set; } = null!;

    public string RunId { get; private set; } = "";

    /// <summary>The run folder, a local path ending in '/'.</summary>
    public string Folder { get; private set; } = "";

    public RunFolder Run { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Env = new() { ["PIPELINES_HOME"] = Temp.Combine("home") };
        var result = await CliRunner.RunAsync(["run", "workflows/fastq-stats.yaml", "--set", "output.uri=" + Temp.Combine("out")], Env);
        Assert.True(result.ExitCode == 0, result.ToString());
        RunId = RunFolder.RunIdFrom(result);
        Folder = Temp.Combine("out", RunId) + "/";
        Run = new RunFolder(new ObjectStoreFactory(new S3Settings(null, null, null, "us-east-1")).Open(Temp.Combine("out")).Child(RunId));
    }

    public Task DisposeAsync()
    {
        Temp.Dispose();
        return Task.CompletedTask;
    }
}
