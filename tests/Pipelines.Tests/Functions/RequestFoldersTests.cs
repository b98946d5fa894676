using Pipelines.Functions;
using Pipelines.Tests.Support;
using Pipelines.Worker;

namespace Pipelines.Tests.Functions;

/// <summary>
/// A request's scratch folder is used again by later requests (RequestFolders): nothing one
/// request left reaches the next, no link in it is followed, and only a bounded number is kept.
/// </summary>
[Unit]
public sealed class RequestFoldersTests : IDisposable
{
    private readonly TempFolder _temp = new();

    public void Dispose() => _temp.Dispose();

    [Fact]
    public void A_returned_folder_comes_back_empty_and_what_its_links_pointed_at_is_untouched()
    {
        var folders = new RequestFolders(new WorkerOptions { Scratch = _temp.Combine("scratch") });
        var outside = _temp.Combine("outside");
        Directory.CreateDirectory(outside);
        File.WriteAllText(Path.Combine(outside, "keep.txt"), "not the request's");

        var folder = folders.Take();
        File.WriteAllText(Path.Combine(RequestFolders.In(folder), "body"), "hello");
        File.WriteAllText(Path.Combine(RequestFolders.Out(folder), "output"), "answer");
        Directory.CreateDirectory(Path.Combine(RequestFolders.Out(folder), "deep", "er"));
        File.CreateSymbolicLink(Path.Combine(RequestFolders.Out(folder), "link"), outside);
        File.CreateSymbolicLink(Path.Combine(RequestFolders.In(folder), "file-link"), Path.Combine(outside, "keep.txt"));
        folders.Return(folder);

        var again = folders.Take();

        Assert.Equal(folder, again);
        Assert.Empty(Directory.EnumerateFileSystemEntries(RequestFolders.In(again)));
        Assert.Empty(Directory.EnumerateFileSystemEntries(RequestFolders.Out(again)));
        Assert.Equal("not the request's", File.ReadAllText(Path.Combine(outside, "keep.txt")));
    }

    [Fact]
    public void Folders_taken_at_once_are_distinct_and_beyond_the_kept_number_are_removed_when_returned()
    {
        var folders = new RequestFolders(new WorkerOptions { Scratch = _temp.Combine("scratch") });

        var taken = Enumerable.Range(0, RequestFolders.Kept + 3).Select(_ => folders.Take()).ToList();
        foreach (var folder in taken)
        {
            folders.Return(folder);
        }

        Assert.Equal(taken.Count, taken.Distinct(StringComparer.Ordinal).Count());
        Assert.Equal(RequestFolders.Kept, taken.Count(Directory.Exists));
    }

    [Fact]
    public void A_folder_that_cannot_be_emptied_is_removed_and_not_given_out_again()
    {
        var folders = new RequestFolders(new WorkerOptions { Scratch = _temp.Combine("scratch") });
        var folder = folders.Take();

        // Its out/ replaced by a link: emptying it (never through a link) fails, so the folder goes.
        Directory.Delete(RequestFolders.Out(folder));
        Directory.CreateSymbolicLink(RequestFolders.Out(folder), _temp.Path);
        folders.Return(folder);

        Assert.False(Directory.Exists(folder));
        Assert.True(Directory.Exists(_temp.Path));
        Assert.NotEqual(folder, folders.Take());
    }
}
