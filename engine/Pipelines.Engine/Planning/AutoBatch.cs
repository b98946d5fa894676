namespace Pipelines.Planning;

/// <summary>
/// <c>input.batch: auto</c>: how many units a task takes when the workflow does not say. Few
/// tasks amortise the cost of a container start (0.1-0.4 s here) over many files; enough tasks
/// keep every worker slot busy and balance uneven files. So the size is the smallest that gives
/// each slot <see cref="Waves"/> tasks, raised so that a task runs at least
/// <see cref="MinTaskTime"/> when recorded times say how long a unit takes, and capped so that
/// a task holds at most <see cref="MaxTaskBytes"/> of input, runs at most
/// <see cref="MaxTaskTime"/>, and takes at most <see cref="MaxBatch"/> units.
/// </summary>
internal static class AutoBatch
{
    public const int Waves = 4;
    public const int MaxBatch = 1000;
    public const long MaxTaskBytes = 2L << 30;
    public static readonly TimeSpan MinTaskTime = TimeSpan.FromSeconds(2);
    public static readonly TimeSpan MaxTaskTime = TimeSpan.FromMinutes(10);

    /// <summary>The batch size, with the reason, for <paramref name="units"/> units of <paramref name="bytes"/> in all.</summary>
    public static (int Batch, string Why) Size(long units, long bytes, int slots, TimeSpan? perUnit)
    {
        if (units <= 1)
        {
            return (1, "one unit");
        }

        slots = Math.Max(1, slots);
        var batch = Ceiling(units, (long)slots * Waves);
        var why = $"{units} units over {slots} worker slots, {Waves} tasks per slot";
        if (perUnit is { } t && t > TimeSpan.Zero)
        {
            var byTime = (long)Math.Ceiling(MinTaskTime / t);
            if (byTime > batch)
            {
                (batch, why) = (byTime, $"a unit takes {t.TotalMilliseconds:0.#} ms in earlier runs of this image, and a task should run at least {MinTaskTime.TotalSeconds:0} s");
            }

            var capTime = Math.Max(1, (long)Math.Floor(MaxTaskTime / t));
            if (capTime < batch)
            {
                (batch, why) = (capTime, $"a unit takes {t.TotalSeconds:0.#} s in earlier runs of this image, and a task should run at most {MaxTaskTime.TotalMinutes:0} min");
            }
        }

        var mean = bytes / units;
        if (mean > 0 && MaxTaskBytes / mean < batch)
        {
            (batch, why) = (Math.Max(1, MaxTaskBytes / mean), $"units average {mean} bytes, and a task holds at most {MaxTaskBytes >> 30} GiB of input");
        }

        if (batch > MaxBatch)
        {
            (batch, why) = (MaxBatch, $"at most {MaxBatch} units per task");
        }

        return ((int)Math.Clamp(batch, 1, units), why);
    }

    private static long Ceiling(long a, long b) => (a + b - 1) / b;
}
