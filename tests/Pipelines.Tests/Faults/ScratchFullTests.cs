using Pipelines.Storage;
using Pipelines.Tests.EndToEnd;
using Pipelines.Tests.Support;

namespace Pipelines.Tests.Faults;

/// <summary>
/// A worker whose scratch disk fills up: the step that fills it fails with a clear reason and
/// the worker goes on serving the next task. The scratch folder is a real 16 MiB tmpfs. And an
/// engine whose temporary folder is full: the run ends at once, saying where.
/// </summary>
[Integration]
public sealed class ScratchFullTests : IDisposable
{
    private readonly TempFolder _temp = new();
    private readonly Tmpfs _disk;
    private readonly string _scratch;

    public ScratchFullTests()
    {
        _disk = new Tmpfs(_temp.Combine("scratch"), "16m");
        _scratch = _disk.Folder;
    }

    [Fact]
    public async Task A_step_that_fills_the_scratch_disk_fails_clearly_and_the_worker_keeps_serving()
    {
        var input = _temp.Combine("in");
        Directory.CreateDirectory(input);
        await File.WriteAllTextAsync(Path.Combine(input, "a-big.txt"), "big\n");
        await File.WriteAllTextAsync(Path.Combine(input, "b-small.txt"), "small\n");
        var workflow = _temp.Write("full.yaml", $$"""
            version: 1
            name: full
            input:
              uri: {{input}}
            steps:
              - name: s
                image: pipelines-samples/pair-check:1
                command: ["sh", "-c", "set -e; case $1 in *big*) dd if=/dev/zero of=/out/fill.bin bs=1048576 count=40;; esac; wc -c < $1 > /out/size.txt", "sh", "{input}"]
                outputs: ["size.txt"]
                # A container of its own, whose /out is in the worker's scratch (a warm container's is
                # under Docker:WarmRoot: HostileFunctionTests fill that disk).
                reuse: false
            output:
              uri: {{_temp.Combine("out")}}
            """);

        var result = await CliRunner.RunAsync(["run", workflow, "--local-workers", "1"], new Dictionary<string, string?>
        {
            ["PIPELINES_HOME"] = _temp.Combine("home"),
            ["PIPELINES_Worker__Scratch"] = _scratch,
        });

        Assert.Equal(1, result.ExitCode);
        Assert.Contains("(1 succeeded, 0 cached, 1 failed, 0 cancelled)", result.Stdout, StringComparison.Ordinal);
        var provenance = await new RunFolder(new ObjectStoreFactory(new S3Settings(null, null, null, "us-east-1")).Open(_temp.Combine("out")).Child(RunFolder.RunIdFrom(result))).ProvenanceAsync();
        var failed = provenance.Single(p => p.Status == "failed");
        Assert.Equal("a-big.txt", failed.Inputs.Single().Key);
        Assert.True(
            failed.Error!.Contains("No space left on device", StringComparison.Ordinal) || failed.Error.Contains("the worker's scratch disk", StringComparison.Ordinal),
            failed.Error);
        Assert.Equal("b-small.txt", provenance.Single(p => p.Status == "succeeded").Inputs.Single().Key);
        Assert.Empty(Directory.EnumerateFileSystemEntries(_scratch));
    }

    [Fact]
    public async Task A_full_temporary_folder_ends_each_task_and_the_run_failed_naming_it_at_once()
    {
        // The engine's temporary folder (TMPDIR: the embedded run store's spill files, the
        // gather's local files) on a real 1 MiB tmpfs, filled: nothing the run writes there fits.
        using var tmp = new Tmpfs(_temp.Combine("tmp"), "1m");
        await using (var fill = File.Create(Path.Combine(tmp.Folder, "fill")))
        {
            var block = new byte[4096];
            try
            {
                while (true)
                {
                    fill.Write(block);
                    fill.Flush();
                }
            }
            catch (IOException)
            {
                // Full.
            }
        }

        var input = _temp.Combine("in-tmp");
        Directory.CreateDirectory(input);
        await File.WriteAllTextAsync(Path.Combine(input, "a.txt"), "a\n");
        await File.WriteAllTextAsync(Path.Combine(input, "b.txt"), "b\n");
        var workflow = _temp.Write("tmp-full.yaml", $$"""
            version: 1
            name: tmpfull
            input:
              uri: {{input}}
            steps:
              - name: s
                image: pipelines-samples/pair-check:1
                command: ["sh", "-c", "wc -c < $1 > /out/size.txt", "sh", "{input}"]
                outputs: ["size.txt"]
                reuse: false
            output:
              uri: {{_temp.Combine("out-tmp")}}
            """);

        // Before: each task's end could not be written and the gather's provenance file neither;
        // each went through Hangfire's retries (about 48 minutes) and the run stayed 'gathering'.
        var result = await CliRunner.RunAsync(["run", workflow, "--local-workers", "1"], new Dictionary<string, string?>
        {
            ["PIPELINES_HOME"] = _temp.Combine("home"),
            ["PIPELINES_Worker__Scratch"] = _scratch,
            ["TMPDIR"] = tmp.Folder,
        }, TimeSpan.FromSeconds(90));

        var said = result.Stdout + result.Stderr;
        Assert.True(result.ExitCode == 1, said);
        Assert.Contains("(0 succeeded, 0 cached, 2 failed, 0 cancelled)", result.Stdout, StringComparison.Ordinal);
        Assert.Contains($"No space left on device : '{tmp.Folder}/pipelines-provenance-", said, StringComparison.Ordinal);
        Assert.Contains($"the gather failed: IOException: No space left on device : '{tmp.Folder}/pipelines-gather/", said, StringComparison.Ordinal);
        Assert.Contains($"(its local files are under {tmp.Folder}/, TMPDIR)", said, StringComparison.Ordinal);
    }

    public void Dispose()
    {
        _disk.Dispose();
        _temp.Dispose();
    }
}
