using Pipelines.Model;
using Pipelines.Planning;
using Pipelines.Storage;

namespace Pipelines.Runs;

/// <summary>
/// The one home of the rule that tells a user their steps will start too many containers: a step
/// with <c>reuse: false</c> starts a container per task (0.1-0.4 s each here, docs/benchmarks.md),
/// so over <see cref="Threshold"/> tasks the starts alone take minutes, where warm containers (the
/// default) or <c>input.batch: auto</c> take seconds. A run's submission (the CLI's and the
/// server's alike, through <see cref="SubmitWarning"/>) and <c>pipelines validate</c> say the same
/// line.
/// </summary>
public static class OneShotAdvice
{
    /// <summary>"A few hundred": above this many one-shot containers a run is told the fix.</summary>
    public const int Threshold = 300;

    /// <summary>The line for a run of <paramref name="tasks"/> tasks, or null when no step starts more than <see cref="Threshold"/> containers.</summary>
    public static string? For(Workflow workflow, long tasks)
    {
        var oneShot = workflow.Steps.Where(s => !s.Reuse).Select(s => $"'{s.Name}'").ToList();
        if (tasks <= Threshold || oneShot.Count == 0)
        {
            return null;
        }

        return $"step {string.Join(", ", oneShot)} starts a container for each of {tasks} tasks (reuse: false), at 0.1-0.4 s a start: "
            + "remove reuse: false (its tasks are then requests to warm containers, the default) or set input.batch: auto (docs/workflow-spec.md, \"Many small files\")";
    }

    /// <summary>
    /// What <c>validate</c> can say without the engine: for a local input folder (it lists it, as
    /// the plan would, with the workflow's include and exclude; it hashes nothing) and a fixed
    /// batch, the line <see cref="For"/> gives for that many tasks. Null when no step says
    /// <c>reuse: false</c>, for <c>batch: auto</c> (it makes few tasks), for <c>group_by</c> and
    /// sample sheets (units are known only from the plan) and for an input in S3, which validate
    /// does not reach; <c>run</c> says it then, from the plan.
    /// </summary>
    public static async Task<string?> ForLocalInputAsync(Workflow workflow, CancellationToken cancellationToken)
    {
        var remote = workflow.Input.Uri.Contains("://", StringComparison.Ordinal) && !workflow.Input.Uri.StartsWith("file://", StringComparison.Ordinal);
        if (workflow.Steps.All(s => s.Reuse) || workflow.Input.BatchAuto || remote || !Planner.CanStream(workflow))
        {
            return null;
        }

        using var stores = new ObjectStoreFactory(new S3Settings(null, null, null, "us-east-1"));
        var input = stores.Open(workflow.Input.Uri);
        if (!Directory.Exists(input.Uri))
        {
            return null;
        }

        var filter = new GlobFilter(workflow.Input.Include, workflow.Input.Exclude);
        long files = 0;
        await foreach (var o in input.Store.ListAsync(input.Prefix, cancellationToken).ConfigureAwait(false))
        {
            if (filter.IsMatch(o.Key[input.Prefix.Length..]))
            {
                files++;
            }
        }

        return For(workflow, (files + workflow.Input.Batch - 1) / Math.Max(1, workflow.Input.Batch));
    }
}
