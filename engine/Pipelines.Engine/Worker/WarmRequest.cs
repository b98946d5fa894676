using Pipelines.Containers;
using Pipelines.Containers.Warm;
using Pipelines.Storage;

namespace Pipelines.Worker;

/// <summary>
/// One attempt of a step as a request to a warm container (<see cref="StepLoop"/>): the task's
/// staged inputs and earlier steps' kept outputs are moved into the container's folders for the
/// request, and the lease is held until the attempt is settled. A request that ran is staged out
/// from the container's own /out, through the descriptor the container holds open, while the
/// lease is held (the request's processes are gone: <see cref="WarmLease.RunAsync"/>); what is
/// needed again goes back to the task's scratch folder, and the rest is left for the lease to
/// empty. So the last step's inputs do not go back, and its /out is not moved into a folder of
/// the attempt's first (docs/benchmarks.md, "The system calls of a one-file task"). Anything
/// that ends the attempt otherwise (a failure to retry, a stop, a broken container, an outage)
/// moves everything back, as before the request, before the lease is given up.
/// </summary>
internal sealed class WarmRequest(Scratch scratch, List<(string Name, string Dir)> kept) : IAsyncDisposable
{
    private WarmLease? _lease;
    private AttemptEnd<ContainerResult>? _end;

    /// <summary>Whether the task's files are back where they were (or were never moved).</summary>
    private bool _back = true;

    /// <summary>The names the inputs were moved into the container's in/ by (<see cref="Scratch.InNames"/>); null when they were moved by a listing.</summary>
    private IReadOnlyCollection<string>? _inNames;

    /// <summary>What the request left in the container's /out, open, while the request is held and nothing was moved back; else null.</summary>
    public NoFollow.SafeDirectory? Out => !_back && _end?.Lease is { } lease ? lease.OutFolder : null;

    /// <summary>The folder this attempt's outputs were moved to for the later steps (<see cref="Done"/>); null when none.</summary>
    public string? KeptOut { get; private set; }

    /// <summary>Moves the inputs and the earlier steps' outputs into the lease's folders.</summary>
    public void MoveIn(WarmLease lease)
    {
        _lease = lease;
        _back = false;
        _inNames = scratch.InNames;
        if (_inNames is { } names)
        {
            // The engine knows what it put in the scratch folder's in/: moved by name, unread.
            foreach (var name in names)
            {
                NoFollow.MoveEntry(scratch.In, name, lease.InFolder, lease.InDir);
            }
        }
        else
        {
            using var staged = NoFollow.OpenDirectory(scratch.In);
            NoFollow.MoveEntries(staged, scratch.In, lease.InFolder, lease.InDir);
        }

        scratch.InNames = [];

        foreach (var (name, dir) in kept)
        {
            Directory.Move(dir, Path.Combine(lease.StepsDir, name));
        }
    }

    /// <summary>Holds the attempt's end, and with it the lease, until this is disposed.</summary>
    public void Hold(AttemptEnd<ContainerResult> end) => _end = end;

    /// <summary>
    /// The attempt succeeded and its outputs are staged out: the earlier steps' outputs go back;
    /// the inputs go back only when <paramref name="keepInputs"/> (a later step reads them); what
    /// the request left in /out is moved into <paramref name="outDir"/> when one is given (a later
    /// step reads it at /steps/NAME). Whatever is left is the lease's to empty. When /out is not
    /// moved and held nothing but the kept files (<paramref name="outNames"/>, from the stage-out's
    /// walk: <see cref="StagedOut.Names"/>), they are removed by name here and the lease is told
    /// /out is empty, so it is not read a second time (<see cref="WarmLease.OutEmptied"/>).
    /// </summary>
    public void Done(bool keepInputs, string? outDir, IReadOnlyList<string>? outNames = null)
    {
        if (_back || _lease is null)
        {
            return;
        }

        MoveBack(inputs: keepInputs);

        // /in holds what the engine moved in, and nothing else (the container cannot write in
        // it): removed by those names (a top folder with what it holds), it is empty.
        if (!keepInputs && _inNames is { } inNames
            && RemovedByName(inNames, _lease.InFolder, _lease.InDir, static (at, name, shown) => NoFollow.RemoveEntry(at, name, shown)))
        {
            _lease.InEmptied();
        }

        if (outDir is not null)
        {
            using var folder = NoFollow.OpenDirectory(outDir);
            NoFollow.MoveEntries(_lease.OutFolder, _lease.OutDir, folder, outDir);
            KeptOut = outDir;
        }
        else if (outNames is not null
            && RemovedByName(outNames, _lease.OutFolder, _lease.OutDir, static (at, name, shown) => NoFollow.Remove(at, name, folder: false, shown)))
        {
            _lease.OutEmptied();
        }
    }

    /// <summary>
    /// Removes the names of a lease folder the engine knows to be all it holds: true when every
    /// one went (the folder is empty, and the lease is told so, not to read it again); false when
    /// one could not, and the lease empties the folder as always (and retires the container if it cannot).
    /// </summary>
    private static bool RemovedByName(IEnumerable<string> names, NoFollow.SafeDirectory folder, string dir, Action<NoFollow.SafeDirectory, byte[], string> remove)
    {
        try
        {
            foreach (var name in names)
            {
                remove(folder, System.Text.Encoding.UTF8.GetBytes(name), Path.Combine(dir, name));
            }

            return true;
        }
        catch (PipelinesException)
        {
            return false;
        }
    }

    /// <summary>Moves the inputs and the earlier steps' outputs back into the task's scratch folder (what is there of them).</summary>
    public void MoveBack() => MoveBack(inputs: true);

    private void MoveBack(bool inputs)
    {
        if (_back || _lease is null)
        {
            return;
        }

        _back = true;
        if (inputs)
        {
            // What is back in in/ is read again when the folder is given back (Scratch.InNames).
            scratch.InNames = null;
            using var staged = NoFollow.OpenDirectory(scratch.In);
            NoFollow.MoveEntries(_lease.InFolder, _lease.InDir, staged, scratch.In);
        }

        foreach (var (name, dir) in kept)
        {
            var moved = Path.Combine(_lease.StepsDir, name);
            if (Directory.Exists(moved))
            {
                Directory.Move(moved, dir);
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            MoveBack();
        }
        finally
        {
            if (_end is not null)
            {
                await _end.DisposeAsync().ConfigureAwait(false);
            }
        }
    }
}
