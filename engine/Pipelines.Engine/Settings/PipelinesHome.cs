namespace Pipelines.Settings;

/// <summary>
/// The folder of this user's engine state (the embedded runs' index, the hash cache, async
/// invocations' files): PIPELINES_HOME, else ~/.local/state/pipelines. One home for the rule.
/// </summary>
public static class PipelinesHome
{
    /// <summary>The environment variable that moves it.</summary>
    public const string Variable = "PIPELINES_HOME";

    public static string Folder => Environment.GetEnvironmentVariable(Variable) is { Length: > 0 } home
        ? home
        : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".local", "state", "pipelines");
}
