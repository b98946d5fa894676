using Pipelines.Containers;
using Pipelines.Storage;

namespace Pipelines.Tests.Containers;

/// <summary>How a line of /proc/PID/mountinfo is read (what the deleted-file count matches on).</summary>
[Unit]
public sealed class DeletedFilesTests
{
    [Fact]
    public void A_mountinfo_line_gives_the_mount_id_device_root_and_mount_point_with_octal_escapes_undone()
    {
        var line = DeletedFiles.ParseMountLine("2145 2120 8:1 /var/lib/pipelines/scratch/a\\040b/out /out rw,relatime - ext4 /dev/sda1 rw");

        Assert.NotNull(line);
        Assert.Equal(2145, line.Value.Id);
        Assert.Equal((8UL << 32) | 1, line.Value.Device);
        Assert.Equal("/var/lib/pipelines/scratch/a b/out", line.Value.Root);
        Assert.Equal("/out", line.Value.MountPoint);
    }

    [Theory]
    [InlineData("")]
    [InlineData("x 1 8:1 / /")]
    [InlineData("1 1 8 / /")]
    public void A_line_that_is_not_a_mount_is_skipped(string text) => Assert.Null(DeletedFiles.ParseMountLine(text));

    [Fact]
    public void A_folder_of_this_machine_is_located_in_its_file_system_by_device_and_path()
    {
        using var temp = new Support.TempFolder();
        var located = DeletedFiles.Locate(temp.Path);

        Assert.NotNull(located);
        Assert.EndsWith("/", located.Value.Path, StringComparison.Ordinal);
        Assert.EndsWith(Path.GetFileName(temp.Path) + "/", located.Value.Path, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("f")]
    [InlineData("f (deleted)")]
    public void An_open_file_has_a_link_while_it_is_named_and_none_once_removed_whatever_its_name(string name)
    {
        // What DeletedFiles tells a removed file by: /proc/PID/fd's " (deleted)" can be a live file's own name.
        using var temp = new Support.TempFolder();
        var path = Path.Combine(temp.Path, name);
        using var stream = new FileStream(path, FileMode.CreateNew, FileAccess.Write);
        var fd = "/proc/self/fd/" + stream.SafeFileHandle.DangerousGetHandle();

        Assert.True(UnixFile.TryStat(fd, followLinks: true, out var named, out _));
        Assert.Equal(1u, named.Links);
        File.Delete(path);
        Assert.True(UnixFile.TryStat(fd, followLinks: true, out var removed, out _));
        Assert.Equal(0u, removed.Links);
        Assert.EndsWith(name + " (deleted)", new FileInfo(fd).LinkTarget, StringComparison.Ordinal);
    }
}
