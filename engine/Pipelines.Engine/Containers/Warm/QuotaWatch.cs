namespace Pipelines.Containers.Warm;

/// <summary>
/// How an idle warm container is held to its quotas (<see cref="WarmSpec.Limits"/>) between
/// requests, as a running request is: measured every <paramref name="Interval"/>
/// (Worker:QuotaPollInterval), its disk kept <paramref name="MinFree"/> free (Worker:MinScratchFree).
/// The host hands it from the worker's settings (WorkerOptions.QuotaWatch), their one home.
/// </summary>
public sealed record QuotaWatch(TimeSpan Interval, long MinFree);
