using System.Globalization;

namespace Pipelines.Containers;

/// <summary>
/// Who made a container or a scratch folder: this host, this process and its start time, and
/// its pid namespace (<c>host/pid/start/ns</c>). It lets a worker clean what a dead worker left
/// without ever touching a live one's: a thing is judged gone only when its owner was on this
/// host, in this pid namespace, and that pid is now free or belongs to a later process.
/// Anything else (another host, another namespace, an unreadable id) is left alone.
/// </summary>
internal static class ProcessOwner
{
    /// <summary>The file in a scratch folder that names its owner (containers never see it).</summary>
    public const string MarkerFile = ".owner";

    /// <summary>This process.</summary>
    public static string Current { get; } = Describe(Environment.ProcessId) ?? $"{Environment.MachineName}/{Environment.ProcessId}/0/0";

    /// <summary>Records this process as the owner of a folder it has just made.</summary>
    public static void Mark(string folder) => File.WriteAllText(Path.Combine(folder, MarkerFile), Current);

    /// <summary>The owner recorded in a folder; null when there is none (made before owners, or being made now).</summary>
    public static string? OwnerOf(string folder)
    {
        try
        {
            return File.ReadAllText(Path.Combine(folder, MarkerFile)).Trim();
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>Whether the owner is known to be dead; false whenever that cannot be told for sure.</summary>
    public static bool IsGone(string? owner)
    {
        var parts = owner?.Split('/');
        if (parts is not [var host, var pidText, var start, var ns]
            || !string.Equals(host, Environment.MachineName, StringComparison.Ordinal)
            || !int.TryParse(pidText, NumberStyles.None, CultureInfo.InvariantCulture, out var pid)
            || !string.Equals(ns, Current.Split('/')[3], StringComparison.Ordinal)
            || start == "0")
        {
            return false;
        }

        var now = Describe(pid);
        return now is null || !string.Equals(now, owner, StringComparison.Ordinal);
    }

    /// <summary>The owner id of a live process, or null when it does not exist.</summary>
    private static string? Describe(int pid)
    {
        try
        {
            // Field 22 of stat is the start time in clock ticks since boot; the command name
            // (field 2) is in parentheses and may hold spaces, so count after its last ')'.
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            var ns = new FileInfo("/proc/self/ns/pid").LinkTarget ?? "?";
            return $"{Environment.MachineName}/{pid}/{fields[19]}/{ns.Replace('/', '_')}";
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException or IOException or UnauthorizedAccessException or IndexOutOfRangeException)
        {
            return null;
        }
    }
}
