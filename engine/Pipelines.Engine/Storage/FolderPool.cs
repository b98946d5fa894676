namespace Pipelines.Storage;

/// <summary>
/// Scratch folders made once and used again: making and removing a few folders per task or
/// request is a real share of a small one's cost (docs/benchmarks.md). A folder given back is
/// reset in place by its owner's rule (which never follows a link, whatever a container left)
/// and kept only when the rule says it is as it was made; otherwise, or when
/// <see cref="Bound"/> idle folders are kept already, it is removed whole and not given out
/// again. <see cref="Dispose"/> (the host's shutdown) removes the idle ones.
/// </summary>
/// <param name="bound">How many idle folders are kept at most.</param>
/// <param name="make">Makes a new folder as the takers expect it and returns its path.</param>
/// <param name="reset">Empties a given-back folder to what <paramref name="make"/> made; false (or a throw) when it could not.</param>
internal sealed class FolderPool(int bound, Func<string> make, Func<string, bool> reset) : IDisposable
{
    private readonly Lock _lock = new();
    private readonly Stack<string> _idle = new();
    private bool _disposed;

    /// <summary>How many idle folders are kept at most.</summary>
    public int Bound => bound;

    /// <summary>How many idle folders are kept now.</summary>
    public int Idle
    {
        get
        {
            lock (_lock)
            {
                return _idle.Count;
            }
        }
    }

    /// <summary>An idle folder, or a new one (always a new one after <see cref="Dispose"/>: its return removes it).</summary>
    public string Take()
    {
        lock (_lock)
        {
            if (_idle.TryPop(out var folder))
            {
                return folder;
            }
        }

        return make();
    }

    /// <summary>
    /// Resets a folder for the next taker, or removes it; null when it was kept or removed, or
    /// why it could not be removed (it is left where it is, out of the pool). A folder its taker
    /// knows it left as it was given (<paramref name="untouched"/>: nothing but the taker can
    /// write in it, and it wrote nothing) is kept without a reset.
    /// </summary>
    public string? Return(string folder, bool untouched = false)
    {
        try
        {
            if (untouched || reset(folder))
            {
                lock (_lock)
                {
                    if (!_disposed && _idle.Count < bound)
                    {
                        _idle.Push(folder);
                        return null;
                    }
                }
            }
        }
        catch (Exception e) when (e is PipelinesException or IOException or UnauthorizedAccessException)
        {
            // Not reset: removed whole below, and never given out again.
        }

        return Remove(folder);
    }

    /// <summary>Removes the idle folders; a folder given back after this is removed, not kept.</summary>
    public void Dispose()
    {
        string[] idle;
        lock (_lock)
        {
            _disposed = true;
            idle = [.. _idle];
            _idle.Clear();
        }

        foreach (var folder in idle)
        {
            Remove(folder);
        }
    }

    private static string? Remove(string folder)
    {
        try
        {
            NoFollow.DeleteTree(folder);
            return null;
        }
        catch (Exception e) when (e is PipelinesException or IOException or UnauthorizedAccessException)
        {
            return e.Message;
        }
    }
}
