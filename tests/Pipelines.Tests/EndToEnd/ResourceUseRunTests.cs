using Pipelines.Storage;
using Pipelines.Tests.Containers;
using Pipelines.Tests.Support;

namespace Pipelines.Tests.EndToEnd;

/// <summary>
/// Each attempt's resource use, as a user finds it in a run folder: the columns of
/// provenance/tasks.parquet and a line of the step's log, for a step in a container of its own
/// and for one served by a warm container (reuse: true). The step burns a known amount of CPU
/// (its shell reads its own from /proc), fills 20 MiB of /tmp and writes to /out.
/// </summary>
[Integration]
public sealed class ResourceUseRunTests : IDisposable
{
    private readonly TempFolder _temp = new();
    private readonly Dictionary<string, string?> _env;

    public ResourceUseRunTests()
    {
        _env = new() { ["PIPELINES_HOME"] = _temp.Combine("home") };
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Each_attempt_records_its_cpu_time_peak_memory_wall_time_and_worker_in_tasks_parquet(bool reuse)
    {
        var workflow = Workflow(reuse);
        var result = await CliRunner.RunAsync(["run", workflow, "--local-workers", "2"], _env);

        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Contains("(2 succeeded, 0 cached, 0 failed, 0 cancelled)", result.Stdout, StringComparison.Ordinal);
        var factory = new ObjectStoreFactory(new S3Settings(null, null, null, "us-east-1"));
        var run = new RunFolder(factory.Open(_temp.Combine("out")).Child(RunFolder.RunIdFrom(result)));

        // The columns are there beside the ones a row always had, which keep their meaning.
        var bytes = await run.ReadAsync("provenance/tasks.parquet");
        List<string> columns;
        using (var stream = new MemoryStream(bytes))
        {
            await using var reader = await Parquet.ParquetReader.CreateAsync(stream);
            columns = reader.Schema.Fields.Select(f => f.Name).ToList();
        }

        Assert.All(new[] { "run_id", "task_id", "attempt", "step", "status", "exit_code", "image", "image_digest", "command", "started_at", "finished_at", "worker", "error", "cpu_seconds", "peak_memory_bytes", "read_bytes", "written_bytes", "wall_seconds" }, c => Assert.Contains(c, columns));
        var rows = await run.ProvenanceAsync();
        Assert.Equal(2, rows.Count);
        foreach (var row in rows)
        {
            Assert.Equal("succeeded", row.Status);
            Assert.Equal(0, row.ExitCode);
            Assert.Equal(["sh", "-c", DockerRuntimeTests.BurnScript], row.Command);
            Assert.Matches(@"^[^:]+:\d+$", row.Worker);

            var log = System.Text.Encoding.UTF8.GetString(await run.ReadAsync($"tasks/{row.TaskId}/burn.log"));
            var burned = DockerRuntimeTests.Burned(log);
            Assert.NotNull(row.CpuSeconds);
            Assert.InRange(row.CpuSeconds.Value, burned * 0.8, burned + 2);
            Assert.NotNull(row.PeakMemoryBytes);
            Assert.InRange(row.PeakMemoryBytes.Value, DockerRuntimeTests.FillBytes, 256L * 1024 * 1024);
            Assert.NotNull(row.WallSeconds);
            Assert.True(row.WallSeconds >= row.CpuSeconds - 0.1, $"wall {row.WallSeconds} s, cpu {row.CpuSeconds} s under a 1-cpu limit");
            Assert.True(row.WallSeconds <= (row.FinishedAt - row.StartedAt).TotalSeconds + 0.001, "the container's run is within the attempt's");
            Assert.Contains("=== pipelines: used cpu ", log, StringComparison.Ordinal);
            if (row.WrittenBytes is null || row.ReadBytes is null)
            {
                // This kernel keeps no cgroup v1 block I/O counts: said in the log, never a zero.
                Assert.Null(row.ReadBytes);
                Assert.Null(row.WrittenBytes);
                Assert.Contains("=== pipelines: warning: bytes read and written not measured: ", log, StringComparison.Ordinal);
            }
        }

        // The report draws CPU and memory per step from the columns.
        var report = System.Text.Encoding.UTF8.GetString(await run.ReadAsync("report.html"));
        Assert.Contains("id=\"chart-cpu\"", report, StringComparison.Ordinal);
    }

    private string Workflow(bool reuse)
    {
        var input = _temp.Combine("input");
        Directory.CreateDirectory(input);
        File.WriteAllText(Path.Combine(input, "a.txt"), "a\n");
        File.WriteAllText(Path.Combine(input, "b.txt"), "b\n");
        var path = _temp.Combine("burn.yaml");
        File.WriteAllText(path, $$"""
            version: 1
            name: burn
            input:
              uri: {{input}}
            steps:
              - name: burn
                image: pipelines-samples/pair-check:1
                command: ["sh", "-c", "{{DockerRuntimeTests.BurnScript}}"]
                resources: { cpus: 1, memory: 256Mi, timeout: 5m }
                reuse: {{(reuse ? "true" : "false")}}
            output:
              uri: {{_temp.Combine("out")}}
            """);
        return path;
    }

    public void Dispose() => _temp.Dispose();
}
