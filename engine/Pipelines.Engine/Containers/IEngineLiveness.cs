namespace Pipelines.Containers;

/// <summary>Whether the engine that runs our containers answers, for the server's readiness check.</summary>
public interface IEngineLiveness
{
    /// <summary>Returns when the engine answers; an engine out of reach is a <see cref="PipelinesException"/> that helps to retry.</summary>
    Task PingAsync(CancellationToken cancellationToken);
}
