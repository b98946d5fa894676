using System.Collections.Concurrent;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Pipelines.Containers;
using Pipelines.Tests.Support;
using Pipelines.Worker;

namespace Pipelines.Tests.Faults;

/// <summary>
/// A Docker engine that accepts connections and never answers (a hung dockerd): Docker.DotNet
/// gives a request up after Docker:RequestTimeout with a TaskCanceledException, which is not the
/// host stopping. The worker's background loops wait it out; one let it through once and the
/// exception ended the worker's host.
/// </summary>
[Integration]
public sealed class DockerTimeoutTests
{
    [Fact]
    public async Task A_request_to_an_engine_that_never_answers_is_given_up_after_the_timeout_and_the_leftover_cleaner_goes_on()
    {
        using var temp = new TempFolder();
        var path = temp.Combine("hung.sock");
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(path));
        listener.Listen(16);
        using var stop = new CancellationTokenSource();
        var held = new ConcurrentQueue<Socket>();
        var accepting = Task.Run(async () =>
        {
            try
            {
                while (true)
                {
                    held.Enqueue(await listener.AcceptAsync(stop.Token));
                }
            }
            catch (OperationCanceledException)
            {
            }
        });

        using var engine = new DockerEngine(new DockerOptions { Endpoint = $"unix://{path}", CgroupParent = "pipelines-hung-engine", RequestTimeout = TimeSpan.FromSeconds(1) });
        var lines = new LogLines();
        using var factory = LoggerFactory.Create(b => b.AddProvider(lines));
        var scratch = temp.Combine("scratch");
        Directory.CreateDirectory(scratch);
        var cleaner = new LeftoverCleaner(engine.Sweep, new WorkerOptions { Scratch = scratch }, factory.CreateLogger<LeftoverCleaner>());

        // The pass ends (it threw the TaskCanceledException before), having asked the engine: a connection was made.
        var (containers, folders) = await cleaner.CleanAsync(CancellationToken.None);

        Assert.Equal((0, 0), (containers, folders));
        Assert.NotEmpty(held);
        Assert.Contains(lines.Lines, l => l.StartsWith("could not clean dead workers' containers: ", StringComparison.Ordinal));

        // The service itself: started, it is still running after a failed pass, and stops when asked.
        await cleaner.StartAsync(CancellationToken.None);
        var before = held.Count;
        for (var wait = System.Diagnostics.Stopwatch.StartNew(); held.Count == before && wait.Elapsed < TimeSpan.FromSeconds(30);)
        {
            await Task.Delay(50);
        }

        Assert.True(held.Count > before, "the cleaner's first pass never asked the engine");
        for (var wait = System.Diagnostics.Stopwatch.StartNew(); lines.Lines.Count(l => l.StartsWith("could not clean dead workers' containers: ", StringComparison.Ordinal)) < 2 && wait.Elapsed < TimeSpan.FromSeconds(30);)
        {
            await Task.Delay(50);
        }

        Assert.Equal(2, lines.Lines.Count(l => l.StartsWith("could not clean dead workers' containers: ", StringComparison.Ordinal)));
        Assert.False(cleaner.ExecuteTask!.IsCompleted, "the cleaner's loop ended: " + cleaner.ExecuteTask.Exception);
        await cleaner.StopAsync(CancellationToken.None);
        Assert.True(cleaner.ExecuteTask.IsCompletedSuccessfully, "the cleaner did not stop cleanly: " + cleaner.ExecuteTask.Exception);

        await stop.CancelAsync();
        await accepting;
        foreach (var s in held)
        {
            s.Dispose();
        }
    }
}
