using Pipelines.Storage;
using Pipelines.Tests.Support;

namespace Pipelines.Tests.Worker;

/// <summary>
/// A folder a container filled with more names than its quota is never read whole: the quota
/// walks read at most the quota plus one, and emptying or moving a folder goes a batch at a time.
/// </summary>
[Unit]
public sealed class FolderNamesTests : IDisposable
{
    private readonly TempFolder _temp = new();

    [Fact]
    public void A_read_stops_at_the_names_asked_for_and_each_read_starts_from_the_folders_start()
    {
        var folder = Filled("many", 500);
        using var open = NoFollow.OpenDirectory(folder);

        var first = NoFollow.ReadNames(open, "/out", 101);
        var again = NoFollow.ReadNames(open, "/out", long.MaxValue);

        Assert.Equal(101, first.Count);
        Assert.Equal(500, again.Count);
    }

    [Fact]
    public void A_folder_larger_than_one_read_of_the_kernel_gives_every_name_once()
    {
        // 3,000 names of 60 bytes are about 240 KB of directory entries: several getdents64 reads.
        var folder = _temp.Combine("long");
        Directory.CreateDirectory(folder);
        var names = Enumerable.Range(0, 3000).Select(i => $"{i:D6}-" + new string('n', 53)).ToList();
        foreach (var name in names)
        {
            File.Create(Path.Combine(folder, name)).Dispose();
        }

        using var open = NoFollow.OpenDirectory(folder);
        var read = NoFollow.ReadNames(open, "/out", long.MaxValue).Select(n => System.Text.Encoding.UTF8.GetString(n)).ToList();
        var again = NoFollow.ReadNames(open, "/out", long.MaxValue);

        Assert.Equal(names.Order(StringComparer.Ordinal), read.Order(StringComparer.Ordinal));
        Assert.Equal(3000, again.Count);
    }

    [Fact]
    public void The_quota_walks_refuse_a_folder_over_the_file_quota_having_read_no_more_than_it_plus_one()
    {
        var folder = Filled("out", 3000);
        var limits = new Pipelines.Containers.OutputLimits(1L << 30, 100, "resources.disk", "resources.files of step 'many' is 100");

        var (files, _, _) = Pipelines.Containers.OutputFolder.Measure(folder, limits);
        var refused = Assert.Throws<Pipelines.Containers.OutputRefusedException>(() => Pipelines.Containers.OutputFolder.Collect(folder, _ => true, limits));

        Assert.Equal(101, files);
        Assert.Equal("the step left more than 100 files and folders in /out, over its quota (resources.files of step 'many' is 100)", refused.Message);
    }

    [Fact]
    public void Emptying_and_moving_a_folder_of_more_names_than_a_batch_leaves_none_behind()
    {
        var folder = Filled("full", (NoFollow.NameBatch * 2) + 7);
        var nested = Filled(Path.Combine("full", "sub"), NoFollow.NameBatch + 1);
        var source = Filled("source", NoFollow.NameBatch + 3);
        var target = _temp.Combine("target");
        Directory.CreateDirectory(target);

        NoFollow.EmptyFolder(folder);
        NoFollow.MoveEntries(source, target);

        Assert.False(Directory.Exists(nested));
        Assert.Empty(Directory.EnumerateFileSystemEntries(folder));
        Assert.Empty(Directory.EnumerateFileSystemEntries(source));
        Assert.Equal(NoFollow.NameBatch + 3, Directory.EnumerateFileSystemEntries(target).Count());
    }

    private string Filled(string name, int count)
    {
        var folder = _temp.Combine(name);
        Directory.CreateDirectory(folder);
        for (var i = 0; i < count; i++)
        {
            File.Create(Path.Combine(folder, "f" + i)).Dispose();
        }

        return folder;
    }

    public void Dispose() => _temp.Dispose();
}
