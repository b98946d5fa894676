using System.Text;
using Pipelines.Containers;
using Pipelines.Model;
using Pipelines.Planning;
using Pipelines.Runs;
using Pipelines.RunStore;
using Pipelines.Storage;

namespace Pipelines.Worker;

/// <summary>
/// Moving a task's files: its inputs from the input location into the scratch folder, each
/// checked against the content tag it was planned with and hashed on the way, and a finished
/// step's kept outputs from its /out into the run's output location.
/// </summary>
internal sealed class Staging(ObjectStoreFactory stores, WorkerOptions options)
{
    /// <summary>
    /// Downloads the task's inputs under <paramref name="inDir"/>, at their keys relative to
    /// input.uri. An input whose stored content no longer matches its planned tag fails the task
    /// (no retry helps: the run must be submitted again).
    /// </summary>
    public async Task<List<FileRef>> StageInAsync(Workflow workflow, TaskRecord task, string inDir, CancellationToken ct)
    {
        var input = stores.Open(workflow.Input.Uri);
        var refs = new FileRef[task.Inputs.Count];

        // The listing admitted each key by the one rule (KeyNames); a task recorded by an older
        // build or edited in the run store is held to it again before anything is written, as a
        // key with a leading '/' or a '..' segment would name a path outside in/ (the engine is root).
        foreach (var file in task.Inputs)
        {
            if (KeyNames.Problem(file.Key) is { } problem)
            {
                throw new PipelinesException($"input {KeyNames.Escape(file.Key)} {problem}: the task cannot stage it", retryHelps: false);
            }
        }

        // The inputs' folders are made first, once each (parents first), in the new in/: a
        // download that had to find its folder missing would cost a failed link every folder.
        foreach (var folder in task.Inputs.Select(i => Path.GetDirectoryName(i.Key)).Where(f => !string.IsNullOrEmpty(f)).Distinct(StringComparer.Ordinal))
        {
            Directory.CreateDirectory(Path.Combine(inDir, folder!));
        }

        await EachAsync(
            task.Inputs.Count,
            async (i, token) =>
            {
                var file = task.Inputs[i];
                var digest = await input.Store.DownloadAsync(input.Key(file.Key), Path.Combine(inDir, file.Key), token).ConfigureAwait(false);
                if (!ContentTags.Matches(file.Hash, file.Size, digest))
                {
                    throw new PipelinesException($"input '{file.Key}' changed after the run was planned (stored content no longer matches its tag {file.Hash}); submit the run again", retryHelps: false);
                }

                refs[i] = new FileRef { Key = file.Key, Size = digest.Size, Sha256 = digest.Sha256 };
            },
            ct).ConfigureAwait(false);
        return refs.ToList();
    }

    /// <summary>
    /// Uploads the kept outputs of a finished step from its /out, open as <paramref name="outDir"/>
    /// (the attempt's folder, or a warm container's own out/ while its request is held). The
    /// container has been removed (or its request has ended), and <see cref="OutputFolder"/> reads
    /// /out without following any link: only regular files inside it are taken, each opened by
    /// descriptor from the open folder and uploaded through that descriptor. What was left out is told in <paramref name="stepLog"/>; what
    /// cannot be taken throws <see cref="OutputRefusedException"/>. <paramref name="alongside"/>
    /// (if any) starts once <paramref name="stepLog"/> has every note of the scan, and runs beside
    /// the uploads: the step log's own upload, one round trip less per task against S3.
    /// </summary>
    public async Task<StagedOut> StageOutAsync(TaskRecord task, ExpandedStep step, NoFollow.SafeDirectory outDir, OutputLimits limits, StorageLocation runOutput, StringBuilder stepLog, Func<CancellationToken, Task>? alongside, CancellationToken ct)
    {
        var globs = step.Outputs.Select(Glob.Parse).ToList();
        var scan = OutputFolder.Collect(outDir, rel => globs.Any(g => g.IsMatch(rel)), limits);
        foreach (var warning in scan.Warnings)
        {
            stepLog.Append("=== pipelines: warning: ").Append(warning).Append(" ===\n");
        }

        // The task's folder and the step's are new on a first delivery: made before the log and
        // the outputs are written, each write does not find its folder missing first.
        var taskFolder = runOutput.Key(RunLayout.TaskPrefix(task.TaskId));
        runOutput.Store.NewFolders(scan.Kept.Count == 0 ? [taskFolder] : [taskFolder, runOutput.Key(RunLayout.TaskStepPrefix(task.TaskId, step.Name))]);
        var refs = new FileRef[scan.Kept.Count];
        var beside = alongside?.Invoke(ct) ?? Task.CompletedTask;
        var uploads = EachAsync(
            scan.Kept.Count,
            async (i, token) =>
            {
                var file = scan.Kept[i];
                var key = RunLayout.TaskOutput(task.TaskId, step.Name, file.Path);
                using var handle = OutputFolder.OpenKept(outDir, file.Path);

                // The store reads the file through the descriptor already judged, not by its path
                // again. Every process that could write it is gone (the container removed, or the
                // warm request's processes killed), and the folder is emptied after: the file is
                // given up, and a local output folder takes it without a copy (AdoptAsync).
                var digest = await runOutput.Store.AdoptAsync(runOutput.Key(key), handle, token).ConfigureAwait(false);
                refs[i] = new FileRef { Key = key, Size = digest.Size, Sha256 = digest.Sha256 };
            },
            ct);
        await Task.WhenAll(uploads, beside).ConfigureAwait(false);
        return new StagedOut(refs.ToList(), scan.Flat ? scan.Kept.Select(k => k.Path).ToList() : null);
    }

    /// <summary>The transfers of one task, <see cref="WorkerOptions.TransferConcurrency"/> at a time.</summary>
    private Task EachAsync(int count, Func<int, CancellationToken, ValueTask> transfer, CancellationToken ct) =>
        Parallel.ForEachAsync(Enumerable.Range(0, count), new ParallelOptions { MaxDegreeOfParallelism = options.TransferConcurrency, CancellationToken = ct }, transfer);
}

/// <summary>
/// A step's kept outputs as stored, and their names in /out when it held nothing else
/// (<see cref="OutputScan.Flat"/>): a warm request's /out is then emptied by those names, unread
/// (<see cref="WarmRequest.Done"/>).
/// </summary>
internal sealed record StagedOut(List<FileRef> Refs, IReadOnlyList<string>? Names);
