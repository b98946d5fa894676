namespace Pipelines.Cli;

/// <summary>Where embedded runs are remembered on this machine: one small file per run naming its output.</summary>
internal static class RunIndex
{
    public static string Folder =>
        Environment.GetEnvironmentVariable("PIPELINES_HOME") is { Length: > 0 } home
            ? Path.Combine(home, "runs")
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".local", "state", "pipelines", "runs");

    public static void Record(string runId, string outputUri)
    {
        Directory.CreateDirectory(Folder);
        File.WriteAllText(Path.Combine(Folder, runId), outputUri);
    }

    public static string? Find(string runId)
    {
        if (runId.Any(c => !(char.IsAsciiLetterOrDigit(c) || c == '-')))
        {
            return null;
        }

        var path = Path.Combine(Folder, runId);
        return File.Exists(path) ? File.ReadAllText(path).Trim() : null;
    }
}
