using System.Diagnostics;

namespace Pipelines.Tests.Support;

/// <summary>
/// A real tmpfs of a given size mounted at a folder for a test (the suite runs as root, as the
/// engine does), so that a disk can be filled on purpose; unmounted when disposed.
/// </summary>
public sealed class Tmpfs : IDisposable
{
    public Tmpfs(string folder, string size)
    {
        Directory.CreateDirectory(folder);
        Run("mount", "-t", "tmpfs", "-o", "size=" + size, "tmpfs", folder);
        Folder = folder;
    }

    public string Folder { get; }

    public void Dispose() => Run("umount", "-l", Folder);

    private static void Run(string program, params string[] args)
    {
        using var p = Process.Start(new ProcessStartInfo(program, args) { RedirectStandardError = true, UseShellExecute = false })!;
        var error = p.StandardError.ReadToEnd();
        p.WaitForExit();
        Assert.True(p.ExitCode == 0, $"{program} {string.Join(' ', args)}: {error}");
    }
}
