using System.Text;
using System.Text.Json;
using Pipelines.Runs;
using Pipelines.RunStore;
using Pipelines.Storage;

namespace Pipelines.Worker;

/// <summary>
/// The attempts of a task that earlier deliveries ran and the harvester vacated, as they wait in
/// the run's output (tasks/TASK/vacated/, one record per vacated delivery, with each step's log
/// at its usual key) for the delivery that ends the task. That delivery numbers its attempts
/// after them (<see cref="Before"/>), starts each step's log with theirs (<see cref="LogOf"/>),
/// commits their rows with its own, and then removes the records (<see cref="DeleteAsync"/>).
/// </summary>
internal sealed class VacatedAttempts
{
    private readonly Dictionary<string, int> _attempts;
    private readonly Dictionary<string, string> _logs;

    private VacatedAttempts(IReadOnlyList<ProvenanceRow> rows, Dictionary<string, string> logs, IReadOnlyList<string> keys)
    {
        (Rows, _logs, Keys) = (rows, logs, keys);
        _attempts = rows.GroupBy(r => r.Step, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.Count(), StringComparer.Ordinal);
    }

    /// <summary>No vacated attempt.</summary>
    public static VacatedAttempts None { get; } = new([], [], []);

    /// <summary>Their provenance rows, each step's attempts numbered from 1 in the order they ran.</summary>
    public IReadOnlyList<ProvenanceRow> Rows { get; }

    /// <summary>The keys of their records.</summary>
    public IReadOnlyList<string> Keys { get; }

    /// <summary>How many attempts of <paramref name="step"/> were vacated: this delivery's are numbered after them.</summary>
    public int Before(string step) => _attempts.GetValueOrDefault(step);

    /// <summary>The log of <paramref name="step"/> as the vacated deliveries left it, which this delivery's continues; null when none.</summary>
    public string? LogOf(string step) => _logs.GetValueOrDefault(step);

    /// <summary>Where a task's vacated attempts wait.</summary>
    public static string Prefix(string taskId) => RunLayout.TaskPrefix(taskId) + "vacated/";

    /// <summary>The vacated attempts of a task (its records in key order, which is the order they were written), with the logs of their steps.</summary>
    public static async Task<VacatedAttempts> ReadAsync(StorageLocation output, string taskId, CancellationToken ct)
    {
        var rows = new List<ProvenanceRow>();
        var keys = new List<string>();
        await foreach (var o in output.Store.ListAsync(output.Key(Prefix(taskId)), ct).ConfigureAwait(false))
        {
            keys.Add(o.Key);
            rows.AddRange(JsonSerializer.Deserialize(await output.Store.ReadAllAsync(o.Key, ct).ConfigureAwait(false), WorkerJson.Default.ListProvenanceRow) ?? []);
        }

        if (rows.Count == 0)
        {
            return None;
        }

        var numbered = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var row in rows)
        {
            row.Attempt = numbered[row.Step] = numbered.GetValueOrDefault(row.Step) + 1;
        }

        var logs = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var step in numbered.Keys)
        {
            var key = output.Key(RunLayout.TaskLog(taskId, step));
            if (await output.Store.StatAsync(key, ct).ConfigureAwait(false) is not null)
            {
                logs[step] = Encoding.UTF8.GetString(await output.Store.ReadAllAsync(key, ct).ConfigureAwait(false));
            }
        }

        return new VacatedAttempts(rows, logs, keys);
    }

    /// <summary>
    /// Keeps one delivery's vacated attempt: the log of the step it was vacated in (first, so that
    /// a record is never without its log), then its rows under a key of their own.
    /// </summary>
    public static async Task WriteAsync(StorageLocation output, string taskId, IReadOnlyList<ProvenanceRow> rows, StepLog? log, DateTimeOffset now, CancellationToken ct)
    {
        if (log is not null)
        {
            await output.Store.PutAsync(output.Key(RunLayout.TaskLog(taskId, log.Step)), Encoding.UTF8.GetBytes(log.Text), "text/plain; charset=utf-8", ct).ConfigureAwait(false);
        }

        var key = output.Key($"{Prefix(taskId)}{now.ToUnixTimeMilliseconds():D15}-{Guid.NewGuid():N}.json");
        await output.Store.PutAsync(key, JsonSerializer.SerializeToUtf8Bytes(rows, WorkerJson.Default.ListProvenanceRow), "application/json", ct).ConfigureAwait(false);
    }

    /// <summary>Removes the records once the task's end (with their rows) is committed.</summary>
    public async Task DeleteAsync(StorageLocation output, CancellationToken ct)
    {
        foreach (var key in Keys)
        {
            await output.Store.DeleteAsync(key, ct).ConfigureAwait(false);
        }
    }

    /// <summary>A step's log as one delivery left it.</summary>
    public sealed record StepLog(string Step, string Text);
}
