namespace Pipelines;

/// <summary>
/// The root of every failure the engine reports on purpose. <see cref="RetryHelps"/> says
/// whether doing the same thing again may succeed (an outage) or not (a user's mistake).
/// </summary>
public class PipelinesException : Exception
{
    public PipelinesException(string message, bool retryHelps, Exception? inner = null)
        : base(message, inner) => RetryHelps = retryHelps;

    public bool RetryHelps { get; }

    /// <summary>How a failure is recorded as a reason: the engine's own message, or the type and message of anything unforeseen.</summary>
    public static string Describe(Exception e) => e is PipelinesException ? e.Message : $"{e.GetType().Name}: {e.Message}";
}
