using System.Text;
using Pipelines.Storage;
using Pipelines.Tests.Support;

namespace Pipelines.Tests.Storage;

[Unit]
public sealed class LocalObjectStoreTests : IDisposable
{
    private readonly TempFolder _temp = new();

    [Fact]
    public async Task List_returns_every_file_below_the_prefix_in_ordinal_key_order()
    {
        _temp.Write("b/2.txt", "22");
        _temp.Write("a/1.txt", "1");
        _temp.Write("a/B.txt", "B");
        _temp.Write("c.txt", "c");
        var store = new LocalObjectStore(_temp.Path);

        var all = new List<StoredObject>();
        await foreach (var o in store.ListAsync("", CancellationToken.None))
        {
            all.Add(o);
        }

        var underA = new List<string>();
        await foreach (var o in store.ListAsync("a/", CancellationToken.None))
        {
            underA.Add(o.Key);
        }

        Assert.Equal(["a/1.txt", "a/B.txt", "b/2.txt", "c.txt"], all.Select(o => o.Key));
        Assert.Equal(2, all.Single(o => o.Key == "b/2.txt").Size);
        Assert.Equal(["a/1.txt", "a/B.txt"], underA);
    }

    [Fact]
    public async Task New_folders_are_made_parents_first_one_there_already_is_fine_and_one_that_cannot_be_is_left_to_the_write_to_say()
    {
        var store = new LocalObjectStore(_temp.Path);
        IObjectStore asStore = store;

        asStore.NewFolders(["tasks/t1/", "tasks/t1/stats/"]);
        Assert.True(Directory.Exists(_temp.Combine("tasks/t1/stats")));

        // A delivery again finds them there.
        asStore.NewFolders(["tasks/t1/", "tasks/t1/stats/"]);
        await store.PutAsync("tasks/t1/stats.log", "log"u8.ToArray(), "text/plain", CancellationToken.None);
        Assert.Equal("log", await File.ReadAllTextAsync(_temp.Combine("tasks/t1/stats.log")));

        // A file where a folder should be: nothing is made, and the write says what stops it.
        _temp.Write("tasks/t2", "not a folder");
        asStore.NewFolders(["tasks/t2/", "tasks/t2/stats/"]);
        var e = await Assert.ThrowsAsync<PipelinesException>(() => store.PutAsync("tasks/t2/stats.log", "log"u8.ToArray(), "text/plain", CancellationToken.None));
        Assert.Contains("tasks/t2", e.Message, StringComparison.Ordinal);
        Assert.Equal("not a folder", await File.ReadAllTextAsync(_temp.Combine("tasks/t2")));
    }

    [Fact]
    public async Task List_walks_folders_in_the_same_ordinal_order_as_sorting_the_full_keys()
    {
        string[] keys = ["ab", "a/b.txt", "a.txt", "a-b/c", "a/a/z", "a/B", "b/x/y/z.fastq", "a0"];
        foreach (var k in keys)
        {
            _temp.Write(k, k);
        }

        var store = new LocalObjectStore(_temp.Path);
        var listed = new List<string>();
        await foreach (var o in store.ListAsync("", CancellationToken.None))
        {
            listed.Add(o.Key);
        }

        var underA = new List<string>();
        await foreach (var o in store.ListAsync("a/", CancellationToken.None))
        {
            underA.Add(o.Key);
        }

        Assert.Equal(keys.Order(StringComparer.Ordinal), listed);
        Assert.Equal(["a/B", "a/a/z", "a/b.txt"], underA);
    }

    [Fact]
    public async Task Put_replaces_whole_objects_and_leaves_no_temporary_file()
    {
        var store = new LocalObjectStore(_temp.Path);
        await store.PutAsync("x/y.txt", Encoding.UTF8.GetBytes("first"), "text/plain", CancellationToken.None);
        await store.PutAsync("x/y.txt", Encoding.UTF8.GetBytes("second"), "text/plain", CancellationToken.None);

        Assert.Equal("second", await File.ReadAllTextAsync(_temp.Combine("x", "y.txt")));
        Assert.Single(Directory.GetFiles(_temp.Combine("x")));
    }

    [Theory]
    [InlineData("../escape.txt")]
    [InlineData("a/../../escape.txt")]
    [InlineData("./x")]
    public async Task Keys_that_leave_the_folder_are_refused(string key)
    {
        var store = new LocalObjectStore(_temp.Path);
        await Assert.ThrowsAsync<PipelinesException>(() => store.PutAsync(key, "x"u8.ToArray(), "text/plain", CancellationToken.None));
        Assert.False(File.Exists(Path.Combine(Path.GetDirectoryName(_temp.Path)!, "escape.txt")));
    }

    [Fact]
    public async Task A_missing_root_folder_is_a_clear_error()
    {
        var store = new LocalObjectStore(_temp.Combine("does-not-exist"));
        var e = await Assert.ThrowsAsync<PipelinesException>(async () =>
        {
            await foreach (var o in store.ListAsync("", CancellationToken.None))
            {
                Assert.Fail(o.Key);
            }
        });
        Assert.Contains("does not exist", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Adopt_takes_a_plain_file_itself_made_the_engines_own_and_hashes_its_bytes()
    {
        // A step's kept output, as a container leaves it: private to its maker, with an old time.
        var source = _temp.Combine("scratch", "stats.tsv");
        Directory.CreateDirectory(Path.GetDirectoryName(source)!);
        await File.WriteAllTextAsync(source, "a\t1\n");
        File.SetUnixFileMode(source, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        File.SetLastWriteTimeUtc(source, new DateTime(2001, 1, 1, 0, 0, 0, DateTimeKind.Utc));
        var store = new LocalObjectStore(_temp.Combine("output"));

        FileDigest digest;
        using (var handle = File.OpenHandle(source))
        {
            digest = await store.AdoptAsync("tasks/t/stats/stats.tsv", handle, CancellationToken.None);
        }

        var stored = _temp.Combine("output", "tasks", "t", "stats", "stats.tsv");
        Assert.Equal(Hashing.Sha256Hex("a\t1\n"u8), digest.Sha256);
        Assert.Equal(4, digest.Size);
        Assert.NotNull(digest.Md5);
        Assert.Equal("a\t1\n", await File.ReadAllTextAsync(stored));
        Assert.Equal(Inode(source), Inode(stored));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead, File.GetUnixFileMode(stored));
        Assert.True(File.GetLastWriteTimeUtc(stored) > DateTime.UtcNow.AddMinutes(-5));
        Assert.Single(Directory.GetFiles(Path.GetDirectoryName(stored)!));
    }

    [Fact]
    public async Task Adopt_copies_a_file_with_another_name()
    {
        // A second name is a way to the same bytes that the store would not own: the file is copied.
        var source = _temp.Combine("scratch", "stats.tsv");
        Directory.CreateDirectory(Path.GetDirectoryName(source)!);
        await File.WriteAllTextAsync(source, "shared");
        File.CreateSymbolicLink(_temp.Combine("scratch", "not-a-hard-link"), source);
        Assert.Equal(0, Link(source, _temp.Combine("scratch", "other-name")));
        var store = new LocalObjectStore(_temp.Combine("output"));

        FileDigest digest;
        using (var handle = File.OpenHandle(source))
        {
            digest = await store.AdoptAsync("out/stats.tsv", handle, CancellationToken.None);
        }

        var stored = _temp.Combine("output", "out", "stats.tsv");
        Assert.Equal(Hashing.Sha256Hex("shared"u8), digest.Sha256);
        Assert.Equal("shared", await File.ReadAllTextAsync(stored));
        Assert.NotEqual(Inode(source), Inode(stored));
    }

    [Fact]
    public async Task Adopt_over_a_name_already_there_replaces_it_whole_and_leaves_no_temporary_file()
    {
        // A delivery again finds the first delivery's output: link(2) would refuse the name, so the
        // file is linked under a temporary name and renamed over it.
        var store = new LocalObjectStore(_temp.Combine("output"));
        await store.PutAsync("tasks/t/stats/stats.tsv", "first delivery"u8.ToArray(), "text/plain", CancellationToken.None);
        var source = _temp.Combine("scratch", "stats.tsv");
        Directory.CreateDirectory(Path.GetDirectoryName(source)!);
        await File.WriteAllTextAsync(source, "second delivery");

        FileDigest digest;
        using (var handle = File.OpenHandle(source))
        {
            digest = await store.AdoptAsync("tasks/t/stats/stats.tsv", handle, CancellationToken.None);
        }

        var stored = _temp.Combine("output", "tasks", "t", "stats", "stats.tsv");
        Assert.Equal(Hashing.Sha256Hex("second delivery"u8), digest.Sha256);
        Assert.Equal("second delivery", await File.ReadAllTextAsync(stored));
        Assert.Equal(Inode(source), Inode(stored));
        Assert.Equal([stored], Directory.GetFiles(Path.GetDirectoryName(stored)!));
    }

    [Fact]
    public void A_new_file_is_written_whole_and_never_over_a_name_already_there()
    {
        var path = _temp.Combine("new.json");
        Assert.Equal(0, UnixFile.WriteNew(path, "{}"u8));
        Assert.Equal("{}", File.ReadAllText(path));

        // O_EXCL: a temporary name another writer took (or a link planted there) is not written through.
        File.CreateSymbolicLink(_temp.Combine("planted"), _temp.Combine("victim"));
        Assert.Equal(17, UnixFile.WriteNew(path, "other"u8));
        Assert.Equal(17, UnixFile.WriteNew(_temp.Combine("planted"), "other"u8));
        Assert.Equal("{}", File.ReadAllText(path));
        Assert.False(File.Exists(_temp.Combine("victim")));
        Assert.Equal(UnixFile.ENOENT, UnixFile.WriteNew(_temp.Combine("missing", "x"), "x"u8));
    }

    private static ulong Inode(string path) =>
        UnixFile.TryStat(path, followLinks: false, out var st, out _) ? st.Inode : throw new FileNotFoundException(path);

    /// <summary>A second name for a file (ln, without -s), as a container could make in its /out; the exit code.</summary>
    private static int Link(string existing, string created)
    {
        using var ln = System.Diagnostics.Process.Start("ln", [existing, created]);
        ln.WaitForExit();
        return ln.ExitCode;
    }

    [Fact]
    public async Task A_small_file_is_read_in_place_and_anything_else_is_left_to_the_download()
    {
        _temp.Write("run/part.tsv", "a\t1\n");
        _temp.Write("run/empty.tsv", "");
        _temp.Write("run/large.tsv", new string('x', 101));
        _temp.Write("elsewhere/secret.tsv", "not yours\n");
        File.CreateSymbolicLink(_temp.Combine("run", "link.tsv"), _temp.Combine("elsewhere", "secret.tsv"));
        using (var mkfifo = System.Diagnostics.Process.Start("mkfifo", [_temp.Combine("run", "pipe.tsv")]))
        {
            await mkfifo.WaitForExitAsync();
            Assert.Equal(0, mkfifo.ExitCode);
        }

        var store = new LocalObjectStore(_temp.Combine("run"));

        Assert.Equal("a\t1\n", Encoding.UTF8.GetString(store.TryReadSmall("part.tsv", 100)!));
        Assert.Equal(0, store.TryReadSmall("empty.tsv", 100)?.Length);
        Assert.Null(store.TryReadSmall("large.tsv", 100));
        Assert.Null(store.TryReadSmall("link.tsv", 100));
        Assert.Null(store.TryReadSmall("pipe.tsv", 100));
        Assert.Null(store.TryReadSmall("missing.tsv", 100));
        Assert.Throws<PipelinesException>(() => store.TryReadSmall("../elsewhere/secret.tsv", 100));

        // The download still takes the link to its file, as it always has.
        var digest = await store.DownloadAsync("link.tsv", _temp.Combine("copy", "link.tsv"), CancellationToken.None);
        Assert.Equal(10, digest.Size);
    }

    public void Dispose() => _temp.Dispose();
}
