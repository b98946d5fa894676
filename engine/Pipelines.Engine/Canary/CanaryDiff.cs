using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Pipelines.Canary;

/// <summary>
/// What a batch canary found, written as <c>canary/diff.json</c> (schema
/// <see cref="SchemaId"/>) and, for people, <c>canary/summary.txt</c>.
/// </summary>
public sealed record CanaryDiff(
    string Schema,
    string Verdict,
    string Step,
    CanarySide Current,
    CanarySide Candidate,
    string Sample,
    int TasksInRun,
    int TasksSampled,
    double Tolerance,
    IReadOnlyList<CanaryTask> Tasks,
    IReadOnlyList<CanaryTable> Tables)
{
    /// <summary>The version of the diff's layout; a change that breaks readers gets a new one.</summary>
    public const string SchemaId = "pipelines.canary/1";

    /// <summary>Both sides made the same outputs (tables equal within the tolerance).</summary>
    public const string Equal = "equal";

    /// <summary>At least one output, cell or row differs.</summary>
    public const string Different = "different";

    /// <summary>No difference was found, but some sampled task did not end well on a side, so it could not be compared.</summary>
    public const string Incomplete = "incomplete";

    private static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        WriteIndented = true,
    };

    public byte[] ToJson() => JsonSerializer.SerializeToUtf8Bytes(this, Json);

    public static CanaryDiff FromJson(ReadOnlySpan<byte> json) =>
        JsonSerializer.Deserialize<CanaryDiff>(json, Json) ?? throw new JsonException("empty canary diff");

    /// <summary>The readable summary: the verdict first, then each difference (as many as the diff lists).</summary>
    public string ToText()
    {
        var s = new StringBuilder();
        s.Append(CultureInfo.InvariantCulture, $"canary of step {Step}: {Verdict}\n");
        s.Append(CultureInfo.InvariantCulture, $"  current:   {Current.Image} ({Current.Digest}), run {Current.RunId}\n");
        s.Append(CultureInfo.InvariantCulture, $"  candidate: {Candidate.Image} ({Candidate.Digest}), run {Candidate.RunId}\n");
        s.Append(CultureInfo.InvariantCulture, $"  sample:    {TasksSampled} of {TasksInRun} task(s) ({Sample}), numbers equal within a relative {Tolerance.ToString("0.###############e+0", CultureInfo.InvariantCulture)}\n");
        var files = Tasks.SelectMany(t => t.Files ?? []).ToList();
        s.Append(CultureInfo.InvariantCulture, $"  files:     {files.Count} compared, {files.Count(f => f.Status == CanaryFile.Same)} byte for byte equal, {files.Count(f => f.Status == CanaryFile.Differs)} differ, {files.Count(f => f.Status is CanaryFile.OnlyCurrent or CanaryFile.OnlyCandidate)} only on one side\n");
        foreach (var t in Tables)
        {
            s.Append(CultureInfo.InvariantCulture, $"  table {t.Name}: {t.RowsCompared} row(s) compared, {t.CellsDiffer} cell(s) differ, {t.RowsOnlyCurrent} row(s) only in current, {t.RowsOnlyCandidate} only in candidate");
            if (t.ColumnsOnlyCurrent.Count + t.ColumnsOnlyCandidate.Count > 0)
            {
                s.Append(CultureInfo.InvariantCulture, $", columns only in current: [{string.Join(", ", t.ColumnsOnlyCurrent)}], only in candidate: [{string.Join(", ", t.ColumnsOnlyCandidate)}]");
            }

            s.Append('\n');
        }

        foreach (var t in Tasks.Where(t => t.Verdict != Equal))
        {
            s.Append(CultureInfo.InvariantCulture, $"task {t.Current.Index} ({t.Current.TaskId} / candidate {t.Candidate.TaskId}): {t.Verdict}{(t.Reason is null ? "" : ": " + t.Reason)}\n");
            if (t.Failure is { } failure)
            {
                if (failure.ExitCode is { } exit)
                {
                    s.Append(CultureInfo.InvariantCulture, $"  {failure.Side} exit code: {exit}\n");
                }

                if (failure.OutputTail is { Count: > 0 } tail)
                {
                    s.Append(CultureInfo.InvariantCulture, $"  {failure.Side} output (stdout and stderr) ended with:\n");
                    foreach (var line in tail)
                    {
                        s.Append("    | ").Append(line).Append('\n');
                    }
                }
            }

            foreach (var f in (t.Files ?? []).Where(f => f.Status != CanaryFile.Same))
            {
                s.Append(CultureInfo.InvariantCulture, $"  file {f.Path}: {f.Status}{(f.Table is null ? "" : $" (a part of table {f.Table}, compared by cell)")}\n");
            }
        }

        foreach (var t in Tables)
        {
            foreach (var p in t.Problems)
            {
                s.Append(CultureInfo.InvariantCulture, $"table {t.Name}: {p}\n");
            }

            foreach (var c in t.Cells)
            {
                s.Append(CultureInfo.InvariantCulture, $"table {t.Name}, task {c.Task}, row {c.Row}{(c.SourceFile is null ? "" : $" ({c.SourceFile})")}, column {c.Column}: current {Show(c.Current)}, candidate {Show(c.Candidate)}\n");
            }

            foreach (var r in t.Rows)
            {
                s.Append(CultureInfo.InvariantCulture, $"table {t.Name}, task {r.Task}, row {r.Row}{(r.SourceFile is null ? "" : $" ({r.SourceFile})")}: only in {r.Side}\n");
            }

            if (t.CellsDiffer > t.Cells.Count || t.RowsOnlyCurrent + t.RowsOnlyCandidate > t.Rows.Count)
            {
                s.Append(CultureInfo.InvariantCulture, $"table {t.Name}: {t.CellsDiffer - t.Cells.Count} more cell(s) and {t.RowsOnlyCurrent + t.RowsOnlyCandidate - t.Rows.Count} more row(s) differ than are listed (the first {CanaryTable.Listed} of each are)\n");
            }
        }

        return s.ToString();
    }

    private static string Show(string? cell) => cell is null ? "(empty)" : "'" + cell + "'";
}

/// <summary>One side of a canary: its run, the step's image and the digest it was pinned to.</summary>
public sealed record CanarySide(string RunId, string Image, string Digest);

/// <summary>A task of one side: its index in its run, its id and how it ended.</summary>
public sealed record CanaryTaskRef(int Index, string TaskId, string State);

/// <summary>One sampled task, both sides: its verdict, why it was not compared, and its kept outputs.</summary>
public sealed record CanaryTask(CanaryTaskRef Current, CanaryTaskRef Candidate, string Verdict, string? Reason, IReadOnlyList<CanaryFile>? Files)
{
    /// <summary>For a task not compared because a side did not end well: that side's exit code and last lines.</summary>
    public CanaryFailure? Failure { get; init; }
}

/// <summary>
/// One kept output (<c>&lt;step&gt;/&lt;path&gt;</c>) of a sampled task on both sides, by sha256.
/// A part of a gathered table is judged by its cells (<see cref="Table"/> names the table).
/// </summary>
public sealed record CanaryFile(string Path, string Status, string? CurrentSha256, string? CandidateSha256, string? Table)
{
    public const string Same = "equal";
    public const string Differs = "different";
    public const string OnlyCurrent = "only-current";
    public const string OnlyCandidate = "only-candidate";
}

/// <summary>
/// One gathered table over the sampled tasks: rows matched within each task's part by their
/// order, cells compared by column name (numbers within the relative tolerance), the counts of
/// everything that differs, and the first <see cref="Listed"/> cells and rows of it.
/// </summary>
public sealed record CanaryTable(
    string Name,
    long RowsCompared,
    long CellsDiffer,
    long RowsOnlyCurrent,
    long RowsOnlyCandidate,
    IReadOnlyList<string> ColumnsOnlyCurrent,
    IReadOnlyList<string> ColumnsOnlyCandidate,
    IReadOnlyList<CanaryCell> Cells,
    IReadOnlyList<CanaryRow> Rows,
    IReadOnlyList<string> Problems)
{
    /// <summary>How many differing cells, and rows on one side only, a table lists (all are counted).</summary>
    public const int Listed = 1000;

    [JsonIgnore]
    public bool Differs => CellsDiffer + RowsOnlyCurrent + RowsOnlyCandidate + ColumnsOnlyCurrent.Count + ColumnsOnlyCandidate.Count + Problems.Count > 0;
}

/// <summary>A cell that differs: the current task's index, the row's number in its part (from 1), its input file, the column, both values.</summary>
public sealed record CanaryCell(int Task, long Row, string? SourceFile, string Column, string? Current, string? Candidate);

/// <summary>A row on one side only (<c>current</c> or <c>candidate</c>).</summary>
public sealed record CanaryRow(int Task, long Row, string? SourceFile, string Side);
