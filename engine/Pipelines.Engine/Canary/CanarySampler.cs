using System.Globalization;
using Pipelines.Planning;

namespace Pipelines.Canary;

/// <summary>
/// Picks a canary's tasks from a plan as it streams. Each task gets a place from the digest of
/// its unit (its input keys or captures, with the workflow's name; never its images), so a run
/// of the same workflow over the same input samples the same tasks every time, whichever image
/// the step has. A share takes the tasks whose place falls below it, a number the tasks with the
/// lowest places; either takes at least one. Only the sample is held, never the plan.
/// </summary>
internal sealed class CanarySampler(string workflow, CanarySample sample)
{
    private readonly List<PlannedTask> _below = [];
    private readonly SortedSet<(ulong Place, int Index)> _lowest = [];
    private readonly Dictionary<int, PlannedTask> _lowestTasks = [];
    private (ulong Place, PlannedTask Task)? _first;

    public int Seen { get; private set; }

    /// <summary>A task's place in [0, 2^64): the first 16 hex digits of its unit's digest.</summary>
    public static ulong Place(string workflow, PlannedTask task) =>
        ulong.Parse(TaskIdentity.UnitDigest(workflow, task.Inputs, task.Captures).AsSpan(0, 16), NumberStyles.HexNumber, CultureInfo.InvariantCulture);

    public void Observe(PlannedTask task)
    {
        Seen++;
        var place = Place(workflow, task);
        if (_first is null || place < _first.Value.Place)
        {
            _first = (place, task);
        }

        if (sample.Percent is { } percent)
        {
            // place / 2^64 < percent / 100, computed without rounding the place away.
            if (percent >= 100 || place / 18446744073709551616.0 < percent / 100)
            {
                _below.Add(task);
            }

            return;
        }

        _lowest.Add((place, task.Index));
        _lowestTasks[task.Index] = task;
        if (_lowest.Count > sample.Count!.Value)
        {
            var drop = _lowest.Max;
            _lowest.Remove(drop);
            _lowestTasks.Remove(drop.Index);
        }
    }

    /// <summary>The sampled tasks by index; at least one when any task was seen.</summary>
    public IReadOnlyList<PlannedTask> Sampled()
    {
        var tasks = sample.Percent is null ? _lowestTasks.Values.ToList() : _below;
        if (tasks.Count == 0 && _first is { } first)
        {
            tasks = [first.Task];
        }

        return tasks.OrderBy(t => t.Index).ToList();
    }
}
