namespace Pipelines.Harvest;

/// <summary>One point of a worker's last hour: the owner's and our CPU (cores), and our tasks.</summary>
public sealed record HarvestPoint(DateTimeOffset At, double OwnerCpu, double HarvestedCpu, long OwnerMemory, int Running, int Suspended, int Vacated);
