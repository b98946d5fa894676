using System.Globalization;
using Pipelines.Canary;
using Pipelines.Model;
using Pipelines.Planning;
using Pipelines.Runs;
using Pipelines.RunStore;
using Pipelines.Storage;

namespace Pipelines.Gather;

/// <summary>The tasks, provenance and folder of one side of a canary, as its gather sees them.</summary>
internal sealed record CanaryRun(RunRecord Run, RunDefinition Definition, IReadOnlyList<TaskRecord> Tasks, IReadOnlyList<ProvenanceRow> Provenance, StorageLocation Folder);

/// <summary>
/// Compares the two sides of a batch canary once both have ended: per sampled task each kept
/// output by sha256, and the parts of each gathered table by cell (numbers within a relative
/// tolerance), a part at a time through local files, so memory holds two rows, not two tables.
/// </summary>
internal static class CanaryCompare
{
    public static async Task<CanaryDiff> CompareAsync(CanaryRun current, CanaryRun candidate, string scratch, CancellationToken ct)
    {
        var link = candidate.Definition.Canary!;
        var sampled = link.Sampled ?? [];
        var currentTasks = current.Tasks.ToDictionary(t => t.Index);
        var currentOutputs = Outputs(current.Provenance, sampled.ToHashSet());
        var candidateOutputs = Outputs(candidate.Provenance, null);
        var tables = current.Definition.Workflow.Gather.Select(g => new TableAccumulator(g)).ToList();
        var tasks = new List<CanaryTask>();
        for (var i = 0; i < candidate.Tasks.Count && i < sampled.Count; i++)
        {
            ct.ThrowIfCancellationRequested();
            var cand = candidate.Tasks[i];
            var cur = currentTasks[sampled[i]];
            var refs = (Ref(cur), Ref(cand));
            if (!EndedWell(cur) || !EndedWell(cand))
            {
                // Why, as the user needs it to act: the exit code and the container's last lines.
                var failure = !EndedWell(cur)
                    ? CanaryFailure.Of("current", cur, current.Tasks, current.Provenance)
                    : CanaryFailure.Of("candidate", cand, candidate.Tasks, candidate.Provenance);
                tasks.Add(new CanaryTask(refs.Item1, refs.Item2, CanaryDiff.Incomplete, failure.Line() + ": not compared", null) { Failure = failure });
                continue;
            }

            var a = currentOutputs.GetValueOrDefault(cur.Index) ?? [];
            var b = candidateOutputs.GetValueOrDefault(cand.Index) ?? [];
            var files = new List<CanaryFile>();
            var differs = false;
            foreach (var path in a.Keys.Union(b.Keys).Order(StringComparer.Ordinal))
            {
                var table = tables.FirstOrDefault(t => t.Holds(path));
                var (x, y) = (a.GetValueOrDefault(path), b.GetValueOrDefault(path));
                var status = x is null ? CanaryFile.OnlyCandidate
                    : y is null ? CanaryFile.OnlyCurrent
                    : string.Equals(x.Sha256, y.Sha256, StringComparison.OrdinalIgnoreCase) ? CanaryFile.Same
                    : CanaryFile.Differs;
                files.Add(new CanaryFile(path, status, x?.Sha256, y?.Sha256, table?.Spec.Name));
                if (table is not null && x is not null && y is not null)
                {
                    // A part is judged by its cells: equal bytes need no reading.
                    if (status == CanaryFile.Differs)
                    {
                        differs |= await table.CompareAsync(cur, x.Key, current.Folder, y.Key, candidate.Folder, scratch, link.Tolerance, ct).ConfigureAwait(false);
                    }
                    else
                    {
                        await table.CountEqualAsync(x.Key, current.Folder, scratch, ct).ConfigureAwait(false);
                    }
                }
                else if (table is not null)
                {
                    differs = true;
                    await table.OnlyOneSideAsync(cur, x is null ? (y!.Key, candidate.Folder, "candidate") : (x.Key, current.Folder, "current"), scratch, ct).ConfigureAwait(false);
                }
                else
                {
                    differs |= status != CanaryFile.Same;
                }
            }

            tasks.Add(new CanaryTask(refs.Item1, refs.Item2, differs ? CanaryDiff.Different : CanaryDiff.Equal, null, files));
        }

        var tableDiffs = tables.Select(t => t.Result()).ToList();
        var verdict = tasks.Any(t => t.Verdict == CanaryDiff.Different) || tableDiffs.Any(t => t.Differs) ? CanaryDiff.Different
            : tasks.Any(t => t.Verdict == CanaryDiff.Incomplete) || tasks.Count < sampled.Count ? CanaryDiff.Incomplete
            : CanaryDiff.Equal;
        return new CanaryDiff(
            CanaryDiff.SchemaId,
            verdict,
            link.Step,
            Side(current, link.CurrentImage),
            Side(candidate, link.CandidateImage),
            link.Sample,
            link.TasksInRun,
            sampled.Count,
            link.Tolerance,
            tasks,
            tableDiffs);
    }

    /// <summary>Equal within a relative tolerance when both are numbers, else equal text (two empty cells are equal).</summary>
    public static bool CellsEqual(string? a, string? b, double tolerance)
    {
        if (string.Equals(a, b, StringComparison.Ordinal))
        {
            return true;
        }

        if (a is null || b is null
            || !double.TryParse(a, NumberStyles.Float, CultureInfo.InvariantCulture, out var x)
            || !double.TryParse(b, NumberStyles.Float, CultureInfo.InvariantCulture, out var y))
        {
            return false;
        }

        if (double.IsNaN(x) || double.IsNaN(y))
        {
            return double.IsNaN(x) && double.IsNaN(y);
        }

        return x == y || Math.Abs(x - y) <= tolerance * Math.Max(Math.Abs(x), Math.Abs(y));
    }

    private static CanarySide Side(CanaryRun side, string image) =>
        new(side.Run.RunId, image, side.Definition.ImageDigests.GetValueOrDefault(image) ?? "");

    private static CanaryTaskRef Ref(TaskRecord t) => new(t.Index, t.TaskId, t.State.Name());

    private static bool EndedWell(TaskRecord t) => t.State is TaskState.Succeeded or TaskState.Cached;

    /// <summary>Each task's kept outputs of its steps' last good attempts, by <c>&lt;step&gt;/&lt;path&gt;</c>: of the tasks named, or all.</summary>
    private static Dictionary<int, Dictionary<string, FileRef>> Outputs(IReadOnlyList<ProvenanceRow> provenance, HashSet<int>? tasks)
    {
        var byTask = new Dictionary<int, Dictionary<string, FileRef>>();
        foreach (var row in provenance.Where(r => r.Status is "succeeded" or "cached" && (tasks is null || tasks.Contains(r.TaskIndex))))
        {
            var files = byTask.TryGetValue(row.TaskIndex, out var f) ? f : byTask[row.TaskIndex] = new(StringComparer.Ordinal);
            var prefix = RunLayout.TaskPrefix(row.TaskId);
            foreach (var o in row.Outputs.Where(o => o.Key.StartsWith(prefix, StringComparison.Ordinal)))
            {
                files[o.Key[prefix.Length..]] = o;
            }
        }

        return byTask;
    }

    /// <summary>One gathered table's comparison, part by part; counts everything, lists the first <see cref="CanaryTable.Listed"/>.</summary>
    private sealed class TableAccumulator(GatherSpec spec)
    {
        private readonly Glob _glob = Glob.Parse(spec.FromGlob);
        private readonly List<CanaryCell> _cells = [];
        private readonly List<CanaryRow> _rows = [];
        private readonly SortedSet<string> _onlyCurrent = new(StringComparer.Ordinal);
        private readonly SortedSet<string> _onlyCandidate = new(StringComparer.Ordinal);
        private readonly List<string> _problems = [];
        private long _compared, _cellsDiffer, _rowsOnlyCurrent, _rowsOnlyCandidate;

        public GatherSpec Spec => spec;

        public bool Holds(string path) =>
            path.StartsWith(spec.FromStep + "/", StringComparison.Ordinal) && _glob.IsMatch(path[(spec.FromStep.Length + 1)..]);

        /// <summary>Both sides' parts, row by row; true when anything differs.</summary>
        public async Task<bool> CompareAsync(TaskRecord task, string currentKey, StorageLocation currentFolder, string candidateKey, StorageLocation candidateFolder, string scratch, double tolerance, CancellationToken ct)
        {
            var a = await DownloadAsync(currentFolder, currentKey, scratch, ct).ConfigureAwait(false);
            var b = await DownloadAsync(candidateFolder, candidateKey, scratch, ct).ConfigureAwait(false);
            var before = (_cellsDiffer, _rowsOnlyCurrent, _rowsOnlyCandidate, _onlyCurrent.Count, _onlyCandidate.Count, _problems.Count);
            try
            {
                using var x = Open(a, "current", currentKey);
                using var y = Open(b, "candidate", candidateKey);
                var (ca, cb) = (ColumnsOf(x), ColumnsOf(y));
                _onlyCurrent.UnionWith(ca.Except(cb));
                _onlyCandidate.UnionWith(cb.Except(ca));
                var common = ca.Where(cb.Contains).Select(c => (Name: c, A: ca.IndexOf(c), B: cb.IndexOf(c))).ToList();
                var source = new SourceFile(task.Inputs.Select(i => i.Key).ToList());
                long row = 0;
                while (true)
                {
                    var hasA = x.TryRead(out var ra);
                    var hasB = y.TryRead(out var rb);
                    if (!hasA && !hasB)
                    {
                        break;
                    }

                    row++;
                    if (hasA && hasB)
                    {
                        _compared++;
                        foreach (var (name, ia, ib) in common)
                        {
                            if (!CellsEqual(ra![ia], rb![ib], tolerance))
                            {
                                _cellsDiffer++;
                                if (_cells.Count < CanaryTable.Listed)
                                {
                                    _cells.Add(new CanaryCell(task.Index, row, source.Of(ra), name, ra[ia], rb[ib]));
                                }
                            }
                        }
                    }
                    else
                    {
                        OnlyRow(task, row, source.Of((hasA ? ra : rb)!), hasA ? "current" : "candidate");
                    }
                }
            }
            catch (MalformedPartException e)
            {
                _problems.Add(e.Message);
            }
            finally
            {
                File.Delete(a);
                File.Delete(b);
            }

            return before != (_cellsDiffer, _rowsOnlyCurrent, _rowsOnlyCandidate, _onlyCurrent.Count, _onlyCandidate.Count, _problems.Count);
        }

        /// <summary>A part with equal bytes on both sides: its rows count as compared, and equal.</summary>
        public async Task CountEqualAsync(string key, StorageLocation folder, string scratch, CancellationToken ct)
        {
            var file = await DownloadAsync(folder, key, scratch, ct).ConfigureAwait(false);
            try
            {
                using var r = Open(file, "current", key);
                while (r.TryRead(out _))
                {
                    _compared++;
                }
            }
            catch (MalformedPartException e)
            {
                _problems.Add(e.Message);
            }
            finally
            {
                File.Delete(file);
            }
        }

        /// <summary>A part that only one side made: every row of it is on that side only.</summary>
        public async Task OnlyOneSideAsync(TaskRecord task, (string Key, StorageLocation Folder, string Side) part, string scratch, CancellationToken ct)
        {
            var file = await DownloadAsync(part.Folder, part.Key, scratch, ct).ConfigureAwait(false);
            try
            {
                using var r = Open(file, part.Side, part.Key);
                var source = new SourceFile(task.Inputs.Select(i => i.Key).ToList());
                long row = 0;
                while (r.TryRead(out var cells))
                {
                    OnlyRow(task, ++row, source.Of(cells), part.Side);
                }
            }
            catch (MalformedPartException e)
            {
                _problems.Add(e.Message);
            }
            finally
            {
                File.Delete(file);
            }
        }

        public CanaryTable Result() => new(spec.Name, _compared, _cellsDiffer, _rowsOnlyCurrent, _rowsOnlyCandidate, [.. _onlyCurrent], [.. _onlyCandidate], _cells, _rows, _problems);

        private void OnlyRow(TaskRecord task, long row, string? sourceFile, string side)
        {
            if (side == "current")
            {
                _rowsOnlyCurrent++;
            }
            else
            {
                _rowsOnlyCandidate++;
            }

            if (_rows.Count < CanaryTable.Listed)
            {
                _rows.Add(new CanaryRow(task.Index, row, sourceFile, side));
            }
        }

        private List<string> ColumnsOf(TableReader reader) =>
            spec.Columns is { } named && (!spec.Header || reader.Header is null || reader.Header.Count == named.Count) ? [.. named] : [.. reader.Header ?? []];

        private TableReader Open(string file, string side, string key) =>
            TableReader.Open(new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.Read, 65536, FileOptions.SequentialScan), $"{side}: {key}", spec);

        private static async Task<string> DownloadAsync(StorageLocation folder, string key, string scratch, CancellationToken ct)
        {
            var path = Path.Combine(scratch, "canary-" + Guid.NewGuid().ToString("N"));
            await folder.Store.DownloadAsync(folder.Key(key), path, ct).ConfigureAwait(false);
            return path;
        }
    }
}
