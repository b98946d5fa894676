namespace Pipelines.Containers;

/// <summary>The one home of the rule that a container's log never keeps a secret it was given.</summary>
internal static class LogMask
{
    /// <summary>A step that prints a secret does not get it kept: its log, which is stored and shown, has *** instead.</summary>
    public static string Apply(string log, IReadOnlyDictionary<string, string> secrets)
    {
        foreach (var value in secrets.Values.Where(v => v.Length > 0).OrderByDescending(v => v.Length))
        {
            log = log.Replace(value, "***", StringComparison.Ordinal);
        }

        return log;
    }
}
