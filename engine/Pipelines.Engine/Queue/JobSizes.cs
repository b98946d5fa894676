namespace Pipelines.Queue;

/// <summary>
/// How many ready tasks of one run a Hangfire job carries (docs/decisions.md, "Several tasks per
/// Hangfire job"): the one home of that rule, the dispatcher's. A job's cost (its fetch and state
/// changes, about 15 transactions with Hangfire.PostgreSql) is paid once for its tasks, while each
/// task keeps its own delivery (Worker/TaskRunner).
/// </summary>
internal static class JobSizes
{
    /// <summary>
    /// The most tasks a job released now carries: the tasks waiting spread over the live slots x 2
    /// (so there are never fewer jobs than that while tasks wait: no slot idles while another
    /// holds a queue), at least 1 and at most <paramref name="max"/> (Tenancy:TasksPerJob); 1 while
    /// slots are contended (<paramref name="contended"/>): async invocations wait or run (each is a
    /// job of its own, and someone waits on it), or more than one tenant has tasks waiting, since a
    /// job of several tasks holds its slot for all of them and fair share hands out slots job by
    /// job (bench/fairshare: with jobs of several tasks beside alpha's 2,000, beta's 20 took 2.9x
    /// their solo time, against 1.8x with one task a job).
    /// </summary>
    public static int Of(int pending, int offered, int max, bool contended) =>
        contended || offered <= 0 ? 1 : Math.Clamp(pending / (2 * offered), 1, Math.Max(1, max));

    /// <summary>
    /// A run's released tasks as jobs of at most <paramref name="size"/> tasks: as few jobs as
    /// that allows, their sizes as even as they can be (9 tasks at 4: 3, 3, 3), in task order.
    /// </summary>
    public static IReadOnlyList<int[]> Split(IReadOnlyList<int> indexes, int size)
    {
        if (indexes.Count == 0)
        {
            return [];
        }

        var jobs = (indexes.Count + Math.Max(1, size) - 1) / Math.Max(1, size);
        var result = new List<int[]>(jobs);
        var at = 0;
        for (var j = 0; j < jobs; j++)
        {
            var n = (indexes.Count - at) / (jobs - j);
            result.Add([.. indexes.Skip(at).Take(n)]);
            at += n;
        }

        return result;
    }
}
