namespace Pipelines.Containers;

/// <summary>
/// The one home of how an error the engine keeps quotes what a container printed (a step's
/// reason, an invocation's, a broken warm container's): a NUL is shown as <c>\0</c>. PostgreSQL's
/// text and jsonb hold no NUL, so a task whose container printed one before it failed had an end
/// that could not be written (22021, no outage): it was delivered again for Hangfire's retries
/// and ended "gave up after 11 deliveries" with the database's words instead of its own, and the
/// tasks after it in a job of several waited that out. The step's stored log keeps every byte.
/// </summary>
internal static class PrintedText
{
    /// <summary><paramref name="text"/> with each NUL shown as the two characters <c>\0</c>.</summary>
    public static string Quotable(string text) =>
        text.Contains('\0', StringComparison.Ordinal) ? text.Replace("\0", "\\0", StringComparison.Ordinal) : text;
}
