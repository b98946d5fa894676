using Microsoft.Extensions.Logging.Abstractions;
using Pipelines.Containers;
using Pipelines.Model;
using Pipelines.Storage;
using Pipelines.Tests.Support;
using Pipelines.Worker;
using ContainerSpec = Pipelines.Containers.ContainerSpec;
using Mount = Pipelines.Containers.Mount;

namespace Pipelines.Tests.Worker;

/// <summary>
/// A task's scratch folder is used again by later tasks (TaskFolders): whatever a real container
/// left in its /out, the next task finds only the owner marker and an empty in/, no link is
/// followed, a folder that is not as it was made is not given out again, and the idle ones are
/// bounded and removed when the worker stops.
/// </summary>
[Integration]
public sealed class TaskFoldersTests : IDisposable
{
    private const string Busybox = "pipelines-samples/pair-check:1";
    private readonly DockerEngine _engine = new(new DockerOptions { Endpoint = TestEnvironment.DockerEndpoint });
    private readonly TempFolder _temp = new();
    private readonly string _label = Guid.NewGuid().ToString("N");

    public void Dispose()
    {
        _engine.Dispose();
        _temp.Dispose();
    }

    [Fact]
    public async Task What_a_container_left_in_out_is_gone_and_the_next_task_gets_the_folder_with_just_its_marker_and_an_empty_in()
    {
        using var folders = new TaskFolders(new WorkerOptions { Scratch = _temp.Combine("scratch") });
        var victim = _temp.Combine("victim");
        Directory.CreateDirectory(victim);
        await File.WriteAllTextAsync(Path.Combine(victim, "keep.txt"), "not the task's");

        var scratch = Scratch.Take(folders, NullLogger.Instance);
        var path = scratch.Path;
        await File.WriteAllTextAsync(Path.Combine(scratch.BeginStaging(), "a.fastq"), "@r\nACGT\n+\nIIII\n");
        var outDir = scratch.NewOut("stats", 1);
        var result = await RunAsync(scratch.In, outDir, string.Join("; ", [
            "busybox ln -s /in/a.fastq /out/in-link",
            "busybox ln -s / /out/root-link",
            "busybox mkfifo /out/fifo",
            "busybox mkdir -p /out/ro/deep && echo x > /out/ro/deep/f && busybox chmod 555 /out/ro/deep /out/ro",
            "echo x > /out/\"$(busybox printf '\\377\\376')\"",
            "busybox ls -la /out",
        ]));
        Assert.True(result.Succeeded, result.Log);
        File.CreateSymbolicLink(Path.Combine(outDir, "victim-link"), victim);
        Assert.Equal(6, Directory.EnumerateFileSystemEntries(outDir).Count());

        scratch.Dispose();
        using var again = Scratch.Take(folders, NullLogger.Instance);

        Assert.Equal(path, again.Path);
        Assert.Equal([ProcessOwner.MarkerFile, "in"], Directory.EnumerateFileSystemEntries(path).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        Assert.Empty(Directory.EnumerateFileSystemEntries(again.In));
        Assert.Equal(ProcessOwner.Current, ProcessOwner.OwnerOf(path));
        Assert.Equal("not the task's", await File.ReadAllTextAsync(Path.Combine(victim, "keep.txt")));
    }

    [Fact]
    public async Task A_folder_its_task_left_as_taken_goes_back_unread_and_one_whose_inputs_came_back_is_read_and_emptied()
    {
        using var folders = new TaskFolders(new WorkerOptions { Scratch = _temp.Combine("scratch") });

        // Staged, then all moved out by name (as a warm request does): in/ is known to be empty.
        var scratch = Scratch.Take(folders, NullLogger.Instance);
        var path = scratch.Path;
        Assert.True(scratch.AsTaken);
        var input = scratch.BeginStaging();
        Assert.False(scratch.AsTaken);
        Directory.CreateDirectory(Path.Combine(input, "part"));
        await File.WriteAllTextAsync(Path.Combine(input, "part", "a.fastq"), "@r\nACGT\n+\nIIII\n");
        scratch.Staged(["part/a.fastq"]);
        Assert.Equal(["part"], scratch.InNames!);
        var elsewhere = _temp.Combine("elsewhere");
        Directory.CreateDirectory(elsewhere);
        using (var target = NoFollow.OpenDirectory(elsewhere))
        {
            NoFollow.MoveEntry(scratch.In, "part", target, elsewhere);
        }

        scratch.InNames = [];
        Assert.True(scratch.AsTaken);
        scratch.Dispose();
        Assert.Equal(1, folders.Idle);

        // Inputs moved back (what is there is not known), or a folder made for an attempt: read and emptied.
        scratch = Scratch.Take(folders, NullLogger.Instance);
        Assert.Equal(path, scratch.Path);
        Assert.Empty(Directory.EnumerateFileSystemEntries(scratch.In));
        scratch.InNames = null;
        Directory.Move(Path.Combine(elsewhere, "part"), Path.Combine(scratch.In, "part"));
        scratch.Dispose();
        scratch = Scratch.Take(folders, NullLogger.Instance);
        Assert.Equal(path, scratch.Path);
        Assert.Empty(Directory.EnumerateFileSystemEntries(scratch.In));
        scratch.NewOut("stats", 1);
        Assert.False(scratch.AsTaken);
        scratch.Dispose();
        Assert.Equal([ProcessOwner.MarkerFile, "in"], Directory.EnumerateFileSystemEntries(path).Select(Path.GetFileName).Order(StringComparer.Ordinal));
    }

    [Fact]
    public void A_folder_not_as_it_was_made_is_removed_without_following_its_links_and_not_given_out_again()
    {
        using var folders = new TaskFolders(new WorkerOptions { Scratch = _temp.Combine("scratch") });
        var victim = _temp.Combine("victim");
        Directory.CreateDirectory(victim);
        File.WriteAllText(Path.Combine(victim, "keep.txt"), "not the task's");

        var scratch = Scratch.Take(folders, NullLogger.Instance);
        var path = scratch.Path;

        // Whatever writes in/ says first that what is there is no longer known (the stage-in does),
        // so the folder is read when it is given back rather than taken as it was made.
        var input = scratch.BeginStaging();
        Directory.Delete(input);
        Directory.CreateSymbolicLink(input, victim);
        scratch.Dispose();
        using var next = Scratch.Take(folders, NullLogger.Instance);

        Assert.NotEqual(path, next.Path);
        Assert.False(Directory.Exists(path));
        Assert.Equal("not the task's", File.ReadAllText(Path.Combine(victim, "keep.txt")));
        Assert.Equal(0, folders.Idle);
    }

    [Fact]
    public void Folders_taken_at_once_are_distinct_the_idle_ones_are_bounded_and_none_is_left_when_the_worker_stops()
    {
        var root = _temp.Combine("scratch");
        var folders = new TaskFolders(new WorkerOptions { Scratch = root });

        var taken = Enumerable.Range(0, TaskFolders.Kept + 3).Select(_ => Scratch.Take(folders, NullLogger.Instance)).ToList();
        foreach (var scratch in taken)
        {
            scratch.NewOut("stats", 1);
            scratch.Dispose();
        }

        Assert.Equal(taken.Count, taken.Select(s => s.Path).Distinct(StringComparer.Ordinal).Count());
        Assert.Equal(TaskFolders.Kept, folders.Idle);
        Assert.Equal(TaskFolders.Kept, Directory.EnumerateFileSystemEntries(root).Count());

        folders.Dispose();

        Assert.Empty(Directory.EnumerateFileSystemEntries(root));
    }

    private async Task<ContainerResult> RunAsync(string inDir, string outDir, string script)
    {
        var image = await _engine.Runtime.ResolveImageAsync(Busybox, CancellationToken.None);
        return await _engine.Runtime.RunAsync(
            new ContainerSpec(image, ["sh", "-c", script], new Dictionary<string, string>(), [new Mount(inDir, ContainerLayout.In, true), new Mount(outDir, ContainerLayout.Out, false)], Resources.Default, new Dictionary<string, string> { ["org.pipelines.test"] = _label }),
            CancellationToken.None);
    }
}
