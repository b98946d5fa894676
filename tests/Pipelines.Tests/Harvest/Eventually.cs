using System.Diagnostics;

namespace Pipelines.Tests.Harvest;

/// <summary>Waits for something to happen, looking again every 200 ms; a bound, never a sleep that a test depends on.</summary>
internal static class Eventually
{
    public static readonly TimeSpan Patience = TimeSpan.FromMinutes(3);

    /// <summary>What <paramref name="probe"/> finds once it finds something; fails, saying what was awaited, after <see cref="Patience"/>.</summary>
    public static async Task<T> WaitAsync<T>(Func<Task<T?>> probe, Func<string> what)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            if (await probe() is { } found)
            {
                return found;
            }

            Assert.True(clock.Elapsed < Patience, $"waited {Patience.TotalSeconds:0} s for {what()}");
            await Task.Delay(200);
        }
    }
}
