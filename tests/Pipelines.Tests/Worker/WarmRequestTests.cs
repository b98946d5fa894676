using Microsoft.Extensions.Logging.Abstractions;
using Pipelines.Containers;
using Pipelines.Containers.Warm;
using Pipelines.Storage;
using Pipelines.Tests.Support;
using Pipelines.Tests.Warm;
using Pipelines.Worker;

namespace Pipelines.Tests.Worker;

/// <summary>
/// A warm step's attempt (WarmRequest) on the real Docker engine: its files are moved into the
/// container's folders, its outputs are read in the container's own out/ while the request is
/// held, and only what a retry or a later step needs goes back to the task's scratch folder;
/// what is left is emptied with the lease, so the next request finds nothing of it.
/// </summary>
[Integration]
public sealed class WarmRequestTests : IAsyncLifetime
{
    private static readonly TimeSpan Minute = TimeSpan.FromMinutes(1);
    private static readonly Dictionary<string, string> NoEnv = [];
    private readonly WarmTestContext _context = new();
    private readonly TempFolder _temp = new();

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        await _context.DisposeAsync();
        _temp.Dispose();
    }

    [Fact]
    public async Task A_failed_attempt_gives_everything_back_a_middle_step_keeps_its_out_and_the_last_leaves_its_files_to_the_lease()
    {
        var pool = _context.Pool();
        var spec = await _context.ForkSpecAsync();
        using var folders = new TaskFolders(new WorkerOptions { Scratch = _temp.Combine("scratch") });
        // The first request moves the inputs by the names staged; once they came back, by a listing.
        using var scratch = await StagedAsync(folders);
        var earlier = Path.Combine(scratch.Path, "out-first-1");
        Directory.CreateDirectory(earlier);
        await File.WriteAllTextAsync(Path.Combine(earlier, "kept.txt"), "kept\n");
        List<(string Name, string Dir)> kept = [("first", earlier)];
        const string Both = "cat /in/part/a.txt /steps/first/kept.txt > /out/r.txt";

        // A failed attempt (to be retried): what it left is read where it left it, then everything goes back.
        await using (var request = new WarmRequest(scratch, kept))
        {
            var (result, _) = await RunAsync(pool, spec, request, Both + "; exit 1");
            Assert.Equal(1, result.ExitCode);
            Assert.Equal(["r.txt"], Kept(request));
        }

        Assert.Equal("input\n", await File.ReadAllTextAsync(Path.Combine(scratch.In, "part", "a.txt")));
        Assert.Equal("kept\n", await File.ReadAllTextAsync(Path.Combine(earlier, "kept.txt")));

        // A step that a later one follows: its /out goes to a folder of its attempt's, its inputs back.
        string second;
        await using (var request = new WarmRequest(scratch, kept))
        {
            var (result, container) = await RunAsync(pool, spec, request, Both);
            Assert.True(result.Succeeded, result.Log);
            request.Done(keepInputs: true, outDir: scratch.NewOut("second", 2));
            second = request.KeptOut!;
            Assert.Empty(Directory.EnumerateFileSystemEntries(container.OutDir));
        }

        Assert.Equal("input\nkept\n", await File.ReadAllTextAsync(Path.Combine(second, "r.txt")));
        Assert.Equal("input\n", await File.ReadAllTextAsync(Path.Combine(scratch.In, "part", "a.txt")));

        // The last step: its outputs are read in the container's out/; its inputs and /out are the lease's to empty.
        string containerId;
        await using (var request = new WarmRequest(scratch, kept))
        {
            var (result, lease) = await RunAsync(pool, spec, request, Both);
            containerId = lease.ContainerId;
            Assert.True(result.Succeeded, result.Log);
            var held = request.Out!;
            Assert.Equal(["r.txt"], Kept(request));
            using (var file = OutputFolder.OpenKept(held, "r.txt"))
            {
                var bytes = new byte[64];
                Assert.Equal("input\nkept\n", System.Text.Encoding.UTF8.GetString(bytes, 0, RandomAccess.Read(file, bytes, 0)));
            }

            // /out held the kept file alone: it is removed by name, and the lease does not read /out again.
            var scan = OutputFolder.Collect(held, _ => true, Limits);
            Assert.True(scan.Flat);
            request.Done(keepInputs: false, outDir: null, scan.Kept.Select(k => k.Path).ToList());
            Assert.Null(request.KeptOut);
            Assert.Null(request.Out);
            Assert.Empty(Directory.EnumerateFileSystemEntries(lease.OutDir));
        }

        Assert.Empty(Directory.EnumerateFileSystemEntries(scratch.In));
        Assert.Equal("kept\n", await File.ReadAllTextAsync(Path.Combine(earlier, "kept.txt")));
        Assert.Equal([earlier, second], Directory.EnumerateDirectories(scratch.Path, "out-*").Order(StringComparer.Ordinal));

        // The same container's next request finds nothing of the last one.
        await using var next = await pool.AcquireAsync(spec, CancellationToken.None);
        Assert.Equal(containerId, next.ContainerId);
        var look = await next.RunAsync(["sh", "-c", "echo in=$(ls -A /in | wc -l) out=$(ls -A /out | wc -l) steps=$(ls -A /steps | wc -l)"], NoEnv, Minute, CancellationToken.None);
        Assert.Contains("in=0 out=0 steps=0", look.Log, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_request_that_left_a_fifo_a_link_and_a_folder_beside_its_output_leaves_nothing_to_the_next()
    {
        var pool = _context.Pool();
        var spec = await _context.ForkSpecAsync();
        using var folders = new TaskFolders(new WorkerOptions { Scratch = _temp.Combine("scratch") });
        using var scratch = await StagedAsync(folders);

        string containerId;
        await using (var request = new WarmRequest(scratch, []))
        {
            var (result, lease) = await RunAsync(pool, spec, request, "cat /in/part/a.txt > /out/r.txt; mkfifo /out/fifo; ln -s /in/part/a.txt /out/link; mkdir -p /out/d/e; echo x > /out/d/e/f; chmod 500 /out/d");
            containerId = lease.ContainerId;
            Assert.True(result.Succeeded, result.Log);

            // The walk removes what is not kept but a folder: /out is not flat, and the lease reads and empties it.
            var scan = OutputFolder.Collect(request.Out!, rel => rel == "r.txt", Limits);
            Assert.False(scan.Flat);
            Assert.Equal(["r.txt"], scan.Kept.Select(k => k.Path));
            request.Done(keepInputs: false, outDir: null, scan.Flat ? scan.Kept.Select(k => k.Path).ToList() : null);
        }

        Assert.Empty(Directory.EnumerateFileSystemEntries(scratch.In));
        await using var next = await pool.AcquireAsync(spec, CancellationToken.None);
        Assert.Equal(containerId, next.ContainerId);
        var look = await next.RunAsync(["sh", "-c", "echo in=$(ls -A /in | wc -l) out=$(ls -A /out | wc -l)"], NoEnv, Minute, CancellationToken.None);
        Assert.Contains("in=0 out=0", look.Log, StringComparison.Ordinal);
    }

    private static Pipelines.Containers.OutputLimits Limits => WarmTestContext.Worker.LimitsFor(new Pipelines.Model.Resources(1, 256L * 1024 * 1024, Minute, 128), "step", "test");

    /// <summary>One request as StepLoop makes it: the files moved in, the command run, the end held by the request.</summary>
    private static async Task<(ContainerResult Result, WarmLease Lease)> RunAsync(DockerWarmPool pool, WarmSpec spec, WarmRequest request, string script)
    {
        var lease = await pool.AcquireAsync(spec, CancellationToken.None);
        request.MoveIn(lease);
        var result = await lease.RunAsync(["sh", "-c", script], NoEnv, Minute, CancellationToken.None);
        request.Hold(new AttemptEnd<ContainerResult>(result, null, lease));
        return (result, lease);
    }

    private static List<string> Kept(WarmRequest request) =>
        OutputFolder.Collect(request.Out!, _ => true, Limits).Kept.Select(k => k.Path).ToList();

    /// <summary>A scratch folder whose in/ holds part/a.txt ("input"), staged as a task's stage-in stages it (its names known).</summary>
    private static async Task<Scratch> StagedAsync(TaskFolders folders)
    {
        var scratch = Scratch.Take(folders, NullLogger.Instance);
        Directory.CreateDirectory(Path.Combine(scratch.BeginStaging(), "part"));
        await File.WriteAllTextAsync(Path.Combine(scratch.In, "part", "a.txt"), "input\n");
        scratch.Staged(["part/a.txt"]);
        return scratch;
    }
}
