using System.Globalization;

namespace Pipelines.Containers;

/// <summary>How a missing image reached the engine for one attempt.</summary>
public enum ImageArrivalKind
{
    /// <summary>This attempt loaded it from the algorithm store.</summary>
    Loaded,

    /// <summary>This attempt pulled it from the registry its name gives.</summary>
    Pulled,

    /// <summary>This attempt waited for the load or pull another task of this worker had started.</summary>
    Waited,
}

/// <summary>
/// What one attempt spent getting its pinned image onto the worker's engine when the engine
/// lacked it: its own load or pull, or its wait for another task's load of the same digest.
/// The columns image_load (<see cref="Text"/>) and image_load_seconds (<see cref="Seconds"/>)
/// of provenance/tasks.parquet, and a line of the step's log; null when the image was there.
/// </summary>
/// <param name="Registry">The name it was (or is being) pulled as; null for a load from the algorithm store.</param>
public sealed record ImageArrival(ImageArrivalKind Kind, string? Registry, double Seconds)
{
    /// <summary>What happened, in words: the image_load column.</summary>
    public string Text => (Kind, Registry) switch
    {
        (ImageArrivalKind.Waited, null) => "waited for this worker's load of it from the algorithm store",
        (ImageArrivalKind.Waited, var name) => $"waited for this worker's pull of it from its registry as {name}",
        (_, null) => "loaded from the algorithm store",
        (_, var name) => $"pulled from its registry as {name}",
    };

    /// <summary>The line of the step's log.</summary>
    public string LogLine(string digest) => string.Create(
        CultureInfo.InvariantCulture,
        $"[pipelines: image {digest} was not on this worker's Docker engine: {Text} in {Seconds:0.00} s]");
}
