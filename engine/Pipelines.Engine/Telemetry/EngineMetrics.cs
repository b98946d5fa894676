using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace Pipelines.Telemetry;

/// <summary>
/// The engine's instruments (docs/operations.md lists them): one home for every metric's name,
/// unit and labels. Names follow OpenTelemetry's conventions (dotted, singular where a value is
/// measured, units in UCUM); the Prometheus exporter turns <c>pipelines.task.duration</c> with
/// unit <c>s</c> into <c>pipelines_task_duration_seconds</c> and adds <c>_total</c> to counters.
/// Labels are few and bounded: a state, a kind, a reason, a function or trigger name, never a
/// run or task id. A tenant label joins the task and run instruments when tenants exist: it is
/// one more tag in <see cref="Of"/>'s callers here, nowhere else.
/// </summary>
internal static class EngineMetrics
{
    /// <summary>The meter's name, for exporters (MeterProviderBuilder.AddMeter).</summary>
    public const string MeterName = "Pipelines";

    /// <summary>Bucket bounds in seconds for what takes milliseconds to seconds: container starts, function requests.</summary>
    private static readonly double[] ShortSeconds = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

    /// <summary>Bucket bounds in seconds for what takes seconds to hours: steps, tasks, gathers, trigger lag.</summary>
    private static readonly double[] LongSeconds = [0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200];

    private static readonly Meter Meter = new(MeterName, EngineVersion.Current);

    private static readonly Counter<long> Tasks = Meter.CreateCounter<long>("pipelines.tasks", "{task}", "Tasks that ended, by their end state.");
    private static readonly UpDownCounter<long> TasksRunning = Meter.CreateUpDownCounter<long>("pipelines.tasks.running", "{task}", "Tasks this process runs now.");
    private static readonly UpDownCounter<long> TasksHeld = Meter.CreateUpDownCounter<long>("pipelines.tasks.held", "{task}", "Tasks this worker has taken and holds back, waiting for room (the machine's owner, a drain, the policy), by reason.");
    private static readonly Histogram<double> TaskDuration = Meter.CreateHistogram("pipelines.task.duration", "s", "How long a task that ran took on its worker (stage-in, steps, stage-out), by its end state.", advice: Buckets(LongSeconds));
    private static readonly Histogram<double> StepDuration = Meter.CreateHistogram("pipelines.step.duration", "s", "How long one attempt of one step took, by how it ended and whether it ran in a warm container.", advice: Buckets(LongSeconds));
    private static readonly Counter<long> RunsSubmitted = Meter.CreateCounter<long>("pipelines.runs.submitted", "{run}", "Runs accepted and queued.");
    private static readonly Counter<long> Runs = Meter.CreateCounter<long>("pipelines.runs", "{run}", "Runs that ended, by their end state.");
    private static readonly Histogram<double> GatherDuration = Meter.CreateHistogram("pipelines.gather.duration", "s", "How long a run's gather took (tables, provenance, report, run.json), by the run's end state.", advice: Buckets(LongSeconds));
    private static readonly Histogram<double> ContainerStart = Meter.CreateHistogram("pipelines.container.start.duration", "s", "From asking the Docker engine for a container to its start (warm: to its helper or server answering); the count is the starts.", advice: Buckets(ShortSeconds));
    private static readonly Counter<long> WarmRequests = Meter.CreateCounter<long>("pipelines.warm.requests", "{request}", "Requests given a warm container, and whether they waited for its start (a cold start).");
    private static readonly Counter<long> WarmReplacements = Meter.CreateCounter<long>("pipelines.warm.replaced", "{container}", "Warm containers removed and replaced because they could not serve on, by why: broken (crashed, hung, timed out, broke the protocol or a rule), ended (by itself while idle), idle_over_quota (its folders passed its quotas while it held no request).");
    private static readonly Histogram<double> InvocationDuration = Meter.CreateHistogram("pipelines.function.invocation.duration", "s", "A function invocation from its admission to its answer, by function and outcome.", advice: Buckets(ShortSeconds));
    private static readonly Counter<long> InvocationErrors = Meter.CreateCounter<long>("pipelines.function.invocation.errors", "{invocation}", "Function invocations that did not succeed, by function, outcome and HTTP status.");
    private static readonly Histogram<double> TriggerLag = Meter.CreateHistogram("pipelines.trigger.lag", "s", "From the oldest object of a batch landing in the bucket (its Last-Modified, or its S3 event's eventTime) to the run over it being queued.", advice: Buckets(LongSeconds));
    private static readonly Counter<long> StorageErrors = Meter.CreateCounter<long>("pipelines.storage.errors", "{error}", "Object store (S3) requests that failed, by whether a retry helps (an outage) or not.");
    private static readonly Counter<long> OutageWaits = Meter.CreateCounter<long>("pipelines.outage.waits", "{wait}", "Times a job met an outage and waited it out (Worker/OutageGate), by the service out of reach.");
    private static readonly Counter<double> OutageWaitTime = Meter.CreateCounter<double>("pipelines.outage.wait.time", "s", "Time jobs spent waiting outages out, by the service out of reach.");

    /// <summary>The services an outage is told apart by (the outage instruments start at zero for each).</summary>
    public static readonly string[] Services = ["s3", "postgres", "docker", "other"];

    /// <summary>
    /// Series that read 0 before anything happened, so that rate(), alerts and dashboards see
    /// them from the start: every known state, reason and service of the counters.
    /// <paramref name="heldReasons"/> are the run store's (RunStore/HoldReasons, above this layer):
    /// one vocabulary for the metric and what status, runs and the run page say.
    /// </summary>
    public static void StartAtZero(IEnumerable<string> heldReasons)
    {
        foreach (var state in new[] { "succeeded", "failed", "cached", "cancelled", "split" })
        {
            Tasks.Add(0, Of("state", state));
        }

        foreach (var state in new[] { "succeeded", "failed", "cancelled" })
        {
            Runs.Add(0, Of("state", state));
        }

        foreach (var reason in heldReasons)
        {
            TasksHeld.Add(0, Of("reason", reason));
        }

        RunsSubmitted.Add(0);
        TasksRunning.Add(0);

        foreach (var service in Services)
        {
            OutageWaits.Add(0, Of("service", service));
            OutageWaitTime.Add(0, Of("service", service));
        }

        foreach (var kind in new[] { "function", "step" })
        {
            foreach (var reason in WarmReplacedReasons)
            {
                WarmReplacements.Add(0, new TagList { { "kind", kind }, { "reason", reason } });
            }
        }

        StorageErrors.Add(0, Of("retryable", "true"));
        StorageErrors.Add(0, Of("retryable", "false"));
    }

    /// <summary>A task ended (committed once, by the delivery that ended it).</summary>
    public static void TaskEnded(string state) => Tasks.Add(1, Of("state", state));

    /// <summary>A task that ran ended after <paramref name="seconds"/> on this worker.</summary>
    public static void TaskRan(string state, double seconds) => TaskDuration.Record(seconds, Of("state", state));

    /// <summary>Counts a task as running on this process until the result is disposed.</summary>
    public static IDisposable Running() => new Gauge(TasksRunning, default);

    /// <summary>Counts a task as held back for <paramref name="reason"/> (one of RunStore/HoldReasons) until the result is disposed.</summary>
    public static IDisposable Held(string reason) => new Gauge(TasksHeld, Of("reason", reason));

    /// <summary>One attempt of one step ended.</summary>
    public static void StepEnded(string status, bool reuse, double seconds) =>
        StepDuration.Record(seconds, new TagList { { "status", status }, { "reuse", reuse ? "true" : "false" } });

    public static void RunSubmitted() => RunsSubmitted.Add(1);

    /// <summary>A run ended (its gather, or the end of last resort when its gather gave up).</summary>
    public static void RunEnded(string state) => Runs.Add(1, Of("state", state));

    /// <summary>A run's gather took <paramref name="seconds"/>, ending it in <paramref name="state"/>.</summary>
    public static void Gathered(string state, double seconds) => GatherDuration.Record(seconds, Of("state", state));

    /// <summary>A container started (kind: oneshot or warm) after <paramref name="seconds"/>.</summary>
    public static void ContainerStarted(string kind, double seconds) => ContainerStart.Record(seconds, Of("kind", kind));

    /// <summary>A request was given a warm container of <paramref name="owner"/>.</summary>
    public static void WarmRequest(string owner, bool coldStart) =>
        WarmRequests.Add(1, new TagList { { "kind", WarmKind(owner) }, { "cold_start", coldStart ? "true" : "false" } });

    /// <summary>A warm container of <paramref name="owner"/> was replaced for <paramref name="reason"/> (<see cref="WarmReplacedReasons"/>).</summary>
    public static void WarmReplaced(string owner, string reason) =>
        WarmReplacements.Add(1, new TagList { { "kind", WarmKind(owner) }, { "reason", reason } });

    /// <summary>Why a warm container is replaced.</summary>
    public static readonly string[] WarmReplacedReasons = ["broken", "ended", "idle_over_quota"];

    /// <summary>What a warm pool owner serves: a step of a run (reuse: true) or a function.</summary>
    public static string WarmKind(string owner) => owner.StartsWith("run:", StringComparison.Ordinal) ? "step" : "function";

    /// <summary>An invocation of <paramref name="function"/> was answered.</summary>
    public static void Invoked(string function, string outcome, int code, double seconds)
    {
        var tags = new TagList { { "function", function }, { "outcome", outcome } };
        InvocationDuration.Record(seconds, tags);
        if (outcome != "succeeded")
        {
            tags.Add("code", code.ToString(System.Globalization.CultureInfo.InvariantCulture));
            InvocationErrors.Add(1, tags);
        }
    }

    /// <summary>A trigger of <paramref name="workflow"/> queued a run over a batch whose oldest object landed <paramref name="seconds"/> ago (0 when a skewed clock makes it negative).</summary>
    public static void TriggerLagged(string workflow, double seconds) => TriggerLag.Record(Math.Max(0, seconds), Of("workflow", workflow));

    /// <summary>An object store request failed.</summary>
    public static void StorageFailed(bool retryHelps) => StorageErrors.Add(1, Of("retryable", retryHelps ? "true" : "false"));

    /// <summary>A job met an outage of <paramref name="service"/> and waits <paramref name="seconds"/> before it tries again.</summary>
    public static void OutageWaited(string service, double seconds)
    {
        OutageWaits.Add(1, Of("service", service));
        OutageWaitTime.Add(seconds, Of("service", service));
    }

    private static TagList Of(string key, string value) => new() { { key, value } };

    private static InstrumentAdvice<double> Buckets(double[] bounds) => new() { HistogramBucketBoundaries = bounds };

    /// <summary>+1 now, -1 once when disposed.</summary>
    private sealed class Gauge : IDisposable
    {
        private readonly UpDownCounter<long> _counter;
        private readonly TagList _tags;
        private int _done;

        public Gauge(UpDownCounter<long> counter, TagList tags)
        {
            (_counter, _tags) = (counter, tags);
            _counter.Add(1, _tags);
        }

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _done, 1) == 0)
            {
                _counter.Add(-1, _tags);
            }
        }
    }
}
