namespace Pipelines.Cli;

/// <summary>What the user named does not exist (a run, a task, a function, an algorithm, a trigger): exit <see cref="Cli.NotFound"/>.</summary>
internal sealed class NotFoundException(string message) : PipelinesException(message, retryHelps: false);
