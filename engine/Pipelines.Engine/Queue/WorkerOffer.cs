namespace Pipelines.Queue;

/// <summary>
/// What one worker offers the queue now (posted on the <see cref="IWorkerBoard"/> by its
/// harvester): the task slots it would admit, of its configured ones, and, when it offers fewer,
/// why (a RunStore/HoldReasons reason and the harvester's own words), at <see cref="At"/>.
/// </summary>
public sealed record WorkerOffer(int Slots, string? Hold, string? Detail, DateTimeOffset At);
