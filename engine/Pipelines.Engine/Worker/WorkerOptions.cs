namespace Pipelines.Worker;

/// <summary>How this process runs tasks (configuration section Worker).</summary>
public sealed record WorkerOptions
{
    /// <summary>Tasks run at once by this process (Hangfire workers). Containers level off at about 4 on 2 cores.</summary>
    public int Concurrency { get; init; } = 4;

    /// <summary>Local folder for staged inputs and outputs; the Docker engine must see the same path.</summary>
    public string Scratch { get; init; } = Path.Combine(Path.GetTempPath(), "pipelines-scratch");

    /// <summary>Transfers at once within one task.</summary>
    public int TransferConcurrency { get; init; } = 16;

    /// <summary>How often a running step looks whether its run was cancelled.</summary>
    public TimeSpan CancelPollInterval { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>The name recorded in provenance.</summary>
    public string Name { get; init; } = $"{Environment.MachineName}:{Environment.ProcessId}";
}
