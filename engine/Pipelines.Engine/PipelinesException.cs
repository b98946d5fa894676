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
}
