using System.Diagnostics;
using System.Net.Sockets;
using Pipelines.Storage;
using Pipelines.Tests.Support;

namespace Pipelines.Tests.Storage;

/// <summary>
/// What a local input folder may hold (docs/workflow-spec.md, "Input folders"): links are
/// followed, and whatever cannot be read as a file is refused by name, never skipped.
/// </summary>
[Unit]
public sealed class LocalInputRulesTests : IDisposable
{
    private readonly TempFolder _temp = new();

    [Fact]
    public async Task List_follows_a_link_to_a_file_and_reports_the_size_of_the_file()
    {
        var target = _temp.Write("elsewhere/reads.fastq", "@r\nACGT\n+\nIIII\n");
        _temp.Write("in/a.fastq", "a");
        File.CreateSymbolicLink(_temp.Combine("in", "linked.fastq"), target);

        var listed = await ListAsync(_temp.Combine("in"));

        Assert.Equal(["a.fastq", "linked.fastq"], listed.Select(o => o.Key));
        Assert.Equal(new FileInfo(target).Length, listed[1].Size);
    }

    [Fact]
    public async Task List_follows_a_folder_link_and_lists_its_files_under_the_links_name()
    {
        _temp.Write("elsewhere/lane1/x.fastq", "x");
        _temp.Write("in/a.fastq", "a");
        Directory.CreateSymbolicLink(_temp.Combine("in", "lane"), _temp.Combine("elsewhere", "lane1"));

        var listed = await ListAsync(_temp.Combine("in"));

        Assert.Equal(["a.fastq", "lane/x.fastq"], listed.Select(o => o.Key));
    }

    [Fact]
    public async Task List_follows_two_links_to_the_same_folder_since_neither_is_a_loop()
    {
        _temp.Write("shared/x.fastq", "x");
        Directory.CreateDirectory(_temp.Combine("in"));
        Directory.CreateSymbolicLink(_temp.Combine("in", "one"), _temp.Combine("shared"));
        Directory.CreateSymbolicLink(_temp.Combine("in", "two"), _temp.Combine("shared"));

        var listed = await ListAsync(_temp.Combine("in"));

        Assert.Equal(["one/x.fastq", "two/x.fastq"], listed.Select(o => o.Key));
    }

    [Fact]
    public async Task List_refuses_a_dangling_link_naming_it_and_its_target()
    {
        _temp.Write("in/a.fastq", "a");
        File.CreateSymbolicLink(_temp.Combine("in", "gone.fastq"), _temp.Combine("nowhere.fastq"));

        var e = await Assert.ThrowsAsync<PipelinesException>(() => ListAsync(_temp.Combine("in")));

        Assert.Equal($"{_temp.Combine("in", "gone.fastq")} is a dangling symbolic link: {_temp.Combine("nowhere.fastq")} does not exist", e.Message);
        Assert.False(e.RetryHelps);
    }

    [Fact]
    public async Task List_refuses_two_links_that_point_at_each_other()
    {
        Directory.CreateDirectory(_temp.Combine("in"));
        File.CreateSymbolicLink(_temp.Combine("in", "a.fastq"), "b");
        File.CreateSymbolicLink(_temp.Combine("in", "b"), "a.fastq");

        var e = await Assert.ThrowsAsync<PipelinesException>(() => ListAsync(_temp.Combine("in")));

        Assert.EndsWith("is a symbolic link loop", e.Message, StringComparison.Ordinal);
        Assert.StartsWith(_temp.Combine("in") + "/", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task List_refuses_a_folder_link_that_points_at_a_folder_above_it()
    {
        _temp.Write("in/sub/a.fastq", "a");
        Directory.CreateSymbolicLink(_temp.Combine("in", "sub", "up"), "..");

        var e = await Assert.ThrowsAsync<PipelinesException>(() => ListAsync(_temp.Combine("in")));

        Assert.Equal($"{_temp.Combine("in", "sub", "up")} is a symbolic link loop: it leads back to a folder that contains it ({_temp.Combine("in")})", e.Message);
    }

    [Fact]
    public async Task List_refuses_a_fifo_without_opening_it()
    {
        _temp.Write("in/a.fastq", "a");
        Run("mkfifo", _temp.Combine("in", "pipe.fastq"));

        // Opening a fifo blocks until a writer comes: the refusal must come from stat alone.
        var e = await Assert.ThrowsAsync<PipelinesException>(() => ListAsync(_temp.Combine("in")).WaitAsync(TimeSpan.FromSeconds(30)));

        Assert.Equal($"{_temp.Combine("in", "pipe.fastq")} is a named pipe (fifo): an input folder may hold only files, folders and links to them", e.Message);
    }

    [Fact]
    public async Task List_refuses_a_socket()
    {
        Directory.CreateDirectory(_temp.Combine("in"));
        using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        socket.Bind(new UnixDomainSocketEndPoint(_temp.Combine("in", "s.sock")));

        var e = await Assert.ThrowsAsync<PipelinesException>(() => ListAsync(_temp.Combine("in")));

        Assert.Equal($"{_temp.Combine("in", "s.sock")} is a socket: an input folder may hold only files, folders and links to them", e.Message);
    }

    [Fact]
    public async Task List_refuses_a_character_device_reached_through_a_link()
    {
        Directory.CreateDirectory(_temp.Combine("in"));
        File.CreateSymbolicLink(_temp.Combine("in", "null.fastq"), "/dev/null");

        var e = await Assert.ThrowsAsync<PipelinesException>(() => ListAsync(_temp.Combine("in")));

        Assert.StartsWith($"{_temp.Combine("in", "null.fastq")} is a character device", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("\\xff.fastq")]
    [InlineData("lane\\xfe/a.fastq")]
    public async Task List_refuses_a_name_that_is_not_valid_utf8(string pythonName)
    {
        Directory.CreateDirectory(_temp.Combine("in"));
        var path = "b'" + _temp.Combine("in") + "/" + pythonName + "'";
        Run("python3", "-c", $"import os; p={path}; os.makedirs(os.path.dirname(p), exist_ok=True); open(p, 'w').write('x')");

        var e = await Assert.ThrowsAsync<PipelinesException>(() => ListAsync(_temp.Combine("in")));

        Assert.EndsWith(": the name is not valid UTF-8 (shown with U+FFFD); rename it", e.Message, StringComparison.Ordinal);
        Assert.StartsWith(_temp.Combine("in") + "/", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task List_refuses_a_folder_it_cannot_read_and_root_reads_every_folder()
    {
        _temp.Write("in/locked/a.fastq", "a");
        File.SetUnixFileMode(_temp.Combine("in", "locked"), UnixFileMode.None);
        try
        {
            if (Environment.UserName == "root")
            {
                // Root bypasses permissions (CAP_DAC_OVERRIDE): the folder is read like any other.
                Assert.Equal(["locked/a.fastq"], (await ListAsync(_temp.Combine("in"))).Select(o => o.Key));
                return;
            }

            var e = await Assert.ThrowsAsync<PipelinesException>(() => ListAsync(_temp.Combine("in")));
            Assert.StartsWith($"cannot read folder {_temp.Combine("in", "locked")}", e.Message, StringComparison.Ordinal);
        }
        finally
        {
            File.SetUnixFileMode(_temp.Combine("in", "locked"), UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }
    }

    [Fact]
    public async Task List_refuses_an_input_uri_that_is_a_file()
    {
        var file = _temp.Write("reads.fastq", "x");

        var e = await Assert.ThrowsAsync<PipelinesException>(() => ListAsync(file));

        Assert.Equal($"{file} is not a folder", e.Message);
    }

    [Fact]
    public async Task Upload_to_a_name_of_250_characters_succeeds_through_a_short_temporary_name()
    {
        var name = new string('n', 246) + ".tsv";
        var local = _temp.Write("local.tsv", "a\tb\n");
        var store = new LocalObjectStore(_temp.Combine("out"));

        await store.UploadAsync("task/" + name, local, CancellationToken.None);
        await store.PutAsync("task/2" + name[1..], "x"u8.ToArray(), "text/plain", CancellationToken.None);

        Assert.Equal("a\tb\n", await File.ReadAllTextAsync(_temp.Combine("out", "task", name)));
        Assert.Equal(["task/2" + name[1..], "task/" + name], (await ListAsync(_temp.Combine("out"))).Select(o => o.Key));
    }

    [Fact]
    public void Temporary_names_are_short_fixed_length_in_the_targets_folder_and_are_never_listed()
    {
        var target = _temp.Combine("out", new string('n', 250));

        var temps = Enumerable.Range(0, 3).Select(_ => LocalObjectStore.TempPath(target)).ToList();

        Assert.All(temps, t =>
        {
            Assert.Equal(Path.GetDirectoryName(target), Path.GetDirectoryName(t));
            Assert.Equal(27, Path.GetFileName(t).Length);
            Assert.True(LocalObjectStore.IsTemporary(Path.GetFileName(t)));
        });
        Assert.Equal(3, temps.Distinct(StringComparer.Ordinal).Count());
        Assert.True(LocalObjectStore.IsTemporary("old.tsv.pipelines-tmp-0123456789ab"));
    }

    [Fact]
    public async Task Upload_to_a_name_longer_than_the_system_allows_says_it_cannot_write_it()
    {
        var local = _temp.Write("local.tsv", "x");
        var store = new LocalObjectStore(_temp.Combine("out"));
        var key = "task/" + new string('n', 300);

        var e = await Assert.ThrowsAsync<PipelinesException>(() => store.UploadAsync(key, local, CancellationToken.None));

        Assert.StartsWith($"cannot write {_temp.Combine("out", key)}: ", e.Message, StringComparison.Ordinal);
        Assert.Empty(Directory.EnumerateFileSystemEntries(_temp.Combine("out", "task")));
    }

    [Fact]
    public async Task Put_under_a_path_that_is_a_file_says_which_part_is_not_a_folder()
    {
        var file = _temp.Write("out", "not a folder");
        var store = new LocalObjectStore(file);

        var e = await Assert.ThrowsAsync<PipelinesException>(() => store.PutAsync("run/workflow.yaml", "x"u8.ToArray(), "application/yaml", CancellationToken.None));

        Assert.Equal($"cannot create folder {file}/run: {file} is a file, not a folder", e.Message);
    }

    [Fact]
    public async Task Download_of_a_linked_file_stages_its_bytes_not_a_link_that_may_not_resolve()
    {
        var target = _temp.Write("elsewhere/reads.fastq", "@r\nACGT\n+\nIIII\n");
        Directory.CreateDirectory(_temp.Combine("in"));
        File.CreateSymbolicLink(_temp.Combine("in", "linked.fastq"), "../elsewhere/reads.fastq");
        var store = new LocalObjectStore(_temp.Combine("in"));
        var staged = _temp.Combine("task", "in", "linked.fastq");

        var digest = await store.DownloadAsync("linked.fastq", staged, CancellationToken.None);

        Assert.Null(new FileInfo(staged).LinkTarget);
        Assert.Equal(await File.ReadAllTextAsync(target), await File.ReadAllTextAsync(staged));
        Assert.Equal((await Hashing.OfFileAsync(target, CancellationToken.None)).Sha256, digest.Sha256);
    }

    [Fact]
    public async Task ReadAll_of_a_fifo_is_refused_without_blocking()
    {
        Directory.CreateDirectory(_temp.Combine("in"));
        Run("mkfifo", _temp.Combine("in", "samplesheet.csv"));
        var store = new LocalObjectStore(_temp.Combine("in"));

        var e = await Assert.ThrowsAsync<PipelinesException>(() => store.ReadAllAsync("samplesheet.csv", CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30)));

        Assert.Equal($"{_temp.Combine("in", "samplesheet.csv")} is a named pipe (fifo), not a file to read", e.Message);
    }

    private static async Task<List<StoredObject>> ListAsync(string root)
    {
        var listed = new List<StoredObject>();
        await foreach (var o in new LocalObjectStore(root).ListAsync("", CancellationToken.None))
        {
            listed.Add(o);
        }

        return listed;
    }

    private static void Run(string file, params string[] args)
    {
        using var p = Process.Start(new ProcessStartInfo(file, args) { RedirectStandardError = true })!;
        p.WaitForExit();
        Assert.True(p.ExitCode == 0, $"{file} failed: {p.StandardError.ReadToEnd()}");
    }

    public void Dispose() => _temp.Dispose();
}
