using System.Diagnostics;
using System.Net.Http.Headers;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Pipelines.Containers;
using Pipelines.Containers.Warm;
using Pipelines.Harvest;
using Pipelines.Model;
using Pipelines.Storage;
using Pipelines.Worker;

namespace Pipelines.Functions;

/// <summary>
/// Runs one request of a function version on a warm container and sorts how it ended, the one
/// shell around the user's code for both the API and the async job: the output is left in a
/// file, every failure becomes an <see cref="InvocationOutcome"/> with the HTTP status that says
/// whose fault it was. Only an outage (the Docker engine out of reach) is thrown, so that an
/// async job is retried and a synchronous call answers 503.
/// </summary>
public sealed partial class FunctionInvoker(IServiceProvider services, WorkerOptions worker, FunctionsOptions options, ILogger<FunctionInvoker> log)
{
    /// <summary>How much of the algorithm's output a crash reports.</summary>
    public const int TailBytes = 4096;

    private IWarmPool? Pool => services.GetService<IWarmPool>();

    /// <summary>Runs <paramref name="input"/> through <paramref name="function"/>; a successful output is written under <paramref name="outputFolder"/>.</summary>
    public async Task<InvocationOutcome> InvokeAsync(FunctionVersion function, FunctionInput input, string invocationId, string outputFolder, CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        var spec = function.Spec;
        IReadOnlyList<string>? argv = null;
        if (spec.Mode == WarmMode.Fork)
        {
            try
            {
                argv = Expand(spec.Command, input, invocationId);
            }
            catch (PipelinesException e)
            {
                return InvocationOutcome.Failure(InvocationStatus.Refused, 400, e.Message, Ms(clock));
            }
        }

        IReadOnlyDictionary<string, string> secrets;
        try
        {
            secrets = worker.SecretsFor(function.Name, spec.Secrets);
        }
        catch (PipelinesException e)
        {
            return InvocationOutcome.Failure(InvocationStatus.Refused, 500, e.Message.Replace("step '", "function '", StringComparison.Ordinal), Ms(clock));
        }

        var pool = Pool;
        if (pool is null)
        {
            return InvocationOutcome.Failure(InvocationStatus.Refused, 503, "this process has no warm container pool, so it cannot serve functions", Ms(clock));
        }

        // Admission (docs/harvesting.md): a request waits, as a task does, for the machine's owner
        // to leave room, at most Harvest:AdmissionHold, then is refused with 503 (the caller tries
        // again, maybe on another machine). While it runs it counts as ours, so a busy owner
        // suspends its container with the rest; one suspended past Harvest:VacateAfter is vacated.
        var harvester = services.GetService<Harvester>();
        using var vacate = new CancellationTokenSource();
        using var admitted = harvester is null ? null
            : await harvester.AdmitRequestAsync(vacate, () => spec.Resources.MemoryBytes, harvester.AdmissionHold, cancellationToken).ConfigureAwait(false);
        if (harvester is not null && admitted is null)
        {
            return InvocationOutcome.Failure(InvocationStatus.Refused, 503, $"this worker lends no capacity now ({harvester.Why()}); waited Harvest:AdmissionHold ({harvester.AdmissionHold.TotalSeconds:0.#} s); try again later", Ms(clock));
        }

        using var stopping = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, vacate.Token);
        try
        {
            return await RunAdmittedAsync(function, input, invocationId, outputFolder, pool, secrets, argv, clock, stopping.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (vacate.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            // An HTTP request cannot move to another machine: it ends, and says so (docs/harvesting.md).
            LogVacated(log, function.Name, function.Version, invocationId);
            return InvocationOutcome.Failure(InvocationStatus.Failed, 503, "vacated: the machine's owner needed it back; the request was suspended for Harvest:VacateAfter and stopped; send it again", Ms(clock));
        }
    }

    private async Task<InvocationOutcome> RunAdmittedAsync(FunctionVersion function, FunctionInput input, string invocationId, string outputFolder, IWarmPool pool, IReadOnlyDictionary<string, string> secrets, IReadOnlyList<string>? argv, Stopwatch clock, CancellationToken cancellationToken)
    {
        var spec = function.Spec;
        WarmLease lease;
        try
        {
            // A version of a pushed algorithm that this engine lacks is loaded first, once per digest (docs/algorithms.md).
            if (services.GetService<IContainerRuntime>() is { } runtime)
            {
                await runtime.EnsureImageAsync(function.ImageDigest, cancellationToken, recentlySeenWillDo: true, pullFrom: function.Spec.Image).ConfigureAwait(false);
            }

            lease = await pool.AcquireAsync(WarmSpecOf(function, secrets), cancellationToken).ConfigureAwait(false);
        }
        catch (PoolFullException e)
        {
            return InvocationOutcome.Failure(InvocationStatus.Refused, 429, e.Message + $"; try again later, or raise max (now {spec.Max}) or queue (now {spec.Queue})", Ms(clock));
        }
        catch (PipelinesException e) when (!e.RetryHelps)
        {
            return InvocationOutcome.Failure(InvocationStatus.Failed, 502, "no container of the function could be started: " + e.Message, Ms(clock));
        }

        await using (lease.ConfigureAwait(false))
        {
            try
            {
                var outcome = (spec.Mode == WarmMode.Fork
                    ? await ForkAsync(function, lease, input, argv!, outputFolder, clock, cancellationToken).ConfigureAwait(false)
                    : await HttpAsync(function, lease, input, outputFolder, clock, cancellationToken).ConfigureAwait(false)) with
                { ColdStart = lease.ColdStart };
                LogInvoked(log, function.Name, function.Version, invocationId, PostgresFunctionStore.Name(outcome.Status), outcome.LatencyMs);
                return outcome;
            }
            catch (WarmContainerException e)
            {
                return InvocationOutcome.Failure(
                    e.TimedOut ? InvocationStatus.TimedOut : InvocationStatus.Failed,
                    e.TimedOut ? 504 : 502,
                    e.TimedOut ? $"the request took longer than its timeout of {Quantities.FormatDuration(spec.Resources.Timeout)}; the container was killed" : "the container serving the request failed: " + e.Message,
                    Ms(clock),
                    lease.ContainerId) with
                { ColdStart = lease.ColdStart };
            }
        }
    }

    /// <summary>The pool's view of a function version: one owner per version (and per algorithm version serving it), never shared.</summary>
    public static WarmSpec WarmSpecOf(FunctionVersion function, IReadOnlyDictionary<string, string> secrets)
    {
        var spec = function.Spec;
        return new WarmSpec(function.Owner, function.ImageDigest, spec.Mode, spec.Command, spec.Env, spec.Resources, new Dictionary<string, string>
        {
            ["org.pipelines.function"] = function.Name,
            ["org.pipelines.function.version"] = function.Version.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["org.pipelines.algorithm.version"] = function.AlgorithmVersion ?? "",
        })
        {
            Secrets = secrets,
            Concurrency = spec.Concurrency,
            MinWarm = spec.MinWarm,
            Max = spec.Max,
            MaxQueue = spec.Queue,
            IdleTimeout = spec.IdleTimeout,
        };
    }

    /// <summary>The command of one request: {input} is the one file, {inputs} every file, {out} /out.</summary>
    public static IReadOnlyList<string> Expand(IReadOnlyList<string> command, FunctionInput input, string invocationId)
    {
        var values = new PlaceholderValues(input.Files.Select(f => ContainerLayout.InputPath(f.Name)).ToList(), invocationId, new Dictionary<string, string>());
        if (values.InputPaths.Count != 1 && command.Any(a => Placeholders.Scan(a).Names.Contains(Placeholders.Input)))
        {
            throw new PipelinesException($"this function takes exactly one input file ({{input}} in its command); the request has {values.InputPaths.Count}", retryHelps: false);
        }

        return command.SelectMany(a => Placeholders.ExpandArgument(a, values)).ToList();
    }

    private async Task<InvocationOutcome> ForkAsync(FunctionVersion function, WarmLease lease, FunctionInput input, IReadOnlyList<string> argv, string outputFolder, Stopwatch clock, CancellationToken ct)
    {
        var spec = function.Spec;
        foreach (var file in input.Files)
        {
            var target = Path.Combine(lease.InDir, file.Name);

            // The staged file is this request's own: moved, not copied, when the folders share a file system.
            File.Move(file.Path, target);
            File.SetUnixFileMode(target, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        }

        var result = await lease.RunAsync(argv, spec.Env, spec.Resources.Timeout, ct).ConfigureAwait(false);
        if (result.TimedOut)
        {
            return InvocationOutcome.Failure(InvocationStatus.TimedOut, 504, $"the request took longer than its timeout of {Quantities.FormatDuration(spec.Resources.Timeout)}; its process was killed", Ms(clock), lease.ContainerId, Tail(result.Log));
        }

        if (!result.Succeeded)
        {
            return InvocationOutcome.Failure(InvocationStatus.Failed, 502, $"the function's command {result.Error}", Ms(clock), lease.ContainerId, Tail(result.Log));
        }

        OutputScan scan;
        var limits = OutputLimits.For(spec.Resources, worker, "function", function.Name);
        try
        {
            scan = OutputFolder.Collect(lease.OutDir, _ => true, limits);
        }
        catch (OutputRefusedException e)
        {
            lease.Discard(e.Message);
            return InvocationOutcome.Failure(InvocationStatus.Failed, 502, "the function's /out was refused: " + e.Message, Ms(clock), lease.ContainerId);
        }

        var wanted = spec.Output is null ? null : spec.Output.StartsWith(ContainerLayout.Out + "/", StringComparison.Ordinal) ? spec.Output[(ContainerLayout.Out.Length + 1)..] : spec.Output;
        OutputFile? chosen;
        if (wanted is not null)
        {
            chosen = scan.Kept.FirstOrDefault(k => string.Equals(k.Path, wanted, StringComparison.Ordinal));
            if (chosen is null)
            {
                return InvocationOutcome.Failure(InvocationStatus.Failed, 502, $"the function left no file /out/{wanted} (its output); it left {Listing(scan)}", Ms(clock), lease.ContainerId, Tail(result.Log));
            }
        }
        else if (scan.Kept.Count != 1)
        {
            return InvocationOutcome.Failure(InvocationStatus.Failed, 502, $"the function left {Listing(scan)} in /out; without 'output:' in the function file it must leave exactly one file", Ms(clock), lease.ContainerId, Tail(result.Log));
        }
        else
        {
            chosen = scan.Kept[0];
        }

        var name = Path.GetFileName(chosen.Path);
        var path = Path.Combine(outputFolder, name);
        FileDigest digest;
        using (var handle = OutputFolder.OpenKept(lease.OutDir, chosen.Path))
        {
            await using var source = new FileStream(handle, FileAccess.Read);
            await using var target = new FileStream(path, FileMode.CreateNew, FileAccess.Write);
            digest = await Hashing.CopyAsync(source, target, ct).ConfigureAwait(false);
        }

        return new InvocationOutcome(InvocationStatus.Succeeded, 200, path, name, spec.ContentType ?? ContentTypes.FromName(name), digest.Sha256, digest.Size, lease.ContainerId, null, null, Ms(clock));
    }

    private async Task<InvocationOutcome> HttpAsync(FunctionVersion function, WarmLease lease, FunctionInput input, string outputFolder, Stopwatch clock, CancellationToken ct)
    {
        var body = input.Files.Count == 1 ? input.Files[0] : throw new PipelinesException("an http-mode request carries one body", retryHelps: false);
        await using var stream = new FileStream(body.Path, FileMode.Open, FileAccess.Read, FileShare.Read, 81920, useAsync: true);
        using var request = new HttpRequestMessage(HttpMethod.Post, "http://function/") { Content = new StreamContent(stream) };
        if (input.ContentType is not null && MediaTypeHeaderValue.TryParse(input.ContentType, out var type))
        {
            request.Content.Headers.ContentType = type;
        }

        request.Content.Headers.ContentLength = body.Size;
        using var response = await lease.SendAsync(request, function.Spec.Resources.Timeout, ct).ConfigureAwait(false);
        var path = Path.Combine(outputFolder, "output");
        FileDigest digest;
        await using (var source = await response.Content.ReadAsStreamAsync(ct).ConfigureAwait(false))
        await using (var target = new FileStream(path, FileMode.CreateNew, FileAccess.Write))
        {
            digest = await Hashing.CopyAsync(new BoundedStream(source, options.MaxResponseBytes), target, ct).ConfigureAwait(false);
        }

        var status = (int)response.StatusCode;
        var contentType = response.Content.Headers.ContentType?.ToString() ?? ContentTypes.Binary;
        if (status >= 400)
        {
            // The server's own answer is still the function's response; it counts as an error.
            return new InvocationOutcome(InvocationStatus.Failed, status, path, "output", contentType, digest.Sha256, digest.Size, lease.ContainerId, $"the function's server answered {status}", null, Ms(clock));
        }

        return new InvocationOutcome(InvocationStatus.Succeeded, status, path, "output", contentType, digest.Sha256, digest.Size, lease.ContainerId, null, null, Ms(clock));
    }

    private static string Listing(OutputScan scan) => scan.Kept.Count == 0 ? "no file"
        : $"{scan.Kept.Count} file(s): " + string.Join(", ", scan.Kept.Take(5).Select(k => k.Path)) + (scan.Kept.Count > 5 ? ", ..." : "");

    /// <summary>The last lines of what the algorithm wrote, at most <see cref="TailBytes"/> characters.</summary>
    public static string? Tail(string log)
    {
        var text = log.TrimEnd();
        if (text.Length == 0)
        {
            return null;
        }

        if (text.Length <= TailBytes)
        {
            return text;
        }

        var cut = text[^TailBytes..];
        var newline = cut.IndexOf('\n', StringComparison.Ordinal);
        return "..." + (newline >= 0 ? cut[(newline + 1)..] : cut);
    }

    private static double Ms(Stopwatch clock) => Math.Round(clock.Elapsed.TotalMilliseconds, 3);

    [LoggerMessage(Level = LogLevel.Information, Message = "function {Function}@{Version} invocation {Id}: vacated, the machine's owner needed it back")]
    private static partial void LogVacated(ILogger logger, string function, int version, string id);

    [LoggerMessage(Level = LogLevel.Information, Message = "function {Function}@{Version} invocation {Id}: {Status} in {LatencyMs} ms")]
    private static partial void LogInvoked(ILogger logger, string function, int version, string id, string status, double latencyMs);

    /// <summary>A response body read through this fails once it passes the limit, so a runaway server cannot fill the disk.</summary>
    private sealed class BoundedStream(Stream inner, long limit) : Stream
    {
        private long _read;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => _read; set => throw new NotSupportedException(); }

        public override void Flush()
        {
        }

        public override int Read(byte[] buffer, int offset, int count) => Count(inner.Read(buffer, offset, count));

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            Count(await inner.ReadAsync(buffer, cancellationToken).ConfigureAwait(false));

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        private int Count(int n)
        {
            _read += n;
            return _read > limit
                ? throw new WarmContainerException($"the function's response passed Functions:MaxResponseSize ({Quantities.FormatSize(limit)})")
                : n;
        }
    }
}
