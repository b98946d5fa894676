using System.Buffers;
using System.Diagnostics;
using System.Net.Http.Headers;
using Microsoft.Extensions.Logging;
using Microsoft.Win32.SafeHandles;
using Pipelines.Containers;
using Pipelines.Containers.Warm;
using Pipelines.Model;
using Pipelines.Storage;
using Pipelines.Worker;

namespace Pipelines.Functions;

/// <summary>
/// Runs one request of a function version on a warm container, for both the API and the async
/// job, through the worker's <see cref="AttemptShell"/> (admission, the image, the lease, the
/// run watched against the function's quotas, the ending sorted), and says what each ending is
/// for the caller: the output left in a file, or an <see cref="InvocationOutcome"/> with the
/// HTTP status that says whose fault it was. Only an outage (the Docker engine out of reach) is
/// thrown, so that an async job is retried and a synchronous call answers 503.
/// </summary>
public sealed partial class FunctionInvoker
{
    /// <summary>How much of the algorithm's output a crash reports.</summary>
    public const int TailBytes = 4096;

    /// <summary>The error of a request the harvester vacated (docs/harvesting.md).</summary>
    public const string VacatedReason = "vacated: the machine's owner needed it back; the request was suspended for Harvest:VacateAfter and stopped; send it again";

    private readonly AttemptShell _shell;
    private readonly WorkerOptions _worker;
    private readonly FunctionsOptions _options;
    private readonly ILogger<FunctionInvoker> _log;

    internal FunctionInvoker(AttemptShell shell, WorkerOptions worker, FunctionsOptions options, ILogger<FunctionInvoker> log) =>
        (_shell, _worker, _options, _log) = (shell, worker, options, log);

    /// <summary>
    /// Runs <paramref name="input"/> through <paramref name="function"/>; a successful output is
    /// written under <paramref name="outputFolder"/>, or for a <paramref name="synchronous"/>
    /// request one of at most <see cref="SmallFile"/> bytes is held in memory
    /// (<see cref="InvocationOutcome.Content"/>): its caller answers with it at once. The ending is logged at Information for an
    /// invocation nobody waits on (async, a shadow copy), at Debug for a <paramref name="synchronous"/>
    /// one: its caller has the answer, and its row and metrics count it (a line per request was about 3% of a busy server's time).
    /// </summary>
    public async Task<InvocationOutcome> InvokeAsync(FunctionVersion function, FunctionInput input, string invocationId, string outputFolder, bool synchronous, CancellationToken cancellationToken)
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
            secrets = _worker.SecretsFor(function.Tenant, function.Name, spec.Secrets);
        }
        catch (PipelinesException e)
        {
            return InvocationOutcome.Failure(InvocationStatus.Refused, 500, e.Message.Replace("step '", "function '", StringComparison.Ordinal), Ms(clock));
        }

        if (!_shell.CanWarm)
        {
            return InvocationOutcome.Failure(InvocationStatus.Refused, 503, "this process has no warm container pool, so it cannot serve functions", Ms(clock));
        }

        // The same quotas as a batch step's, checked while the request writes (docs/security.md);
        // a request waits for the harvester's room, as a task does, and can be vacated (docs/harvesting.md).
        var warm = WarmSpecOf(function, secrets, _worker);
        var attempt = new Attempt(warm.Limits!, spec.Resources.MemoryBytes)
        {
            Warm = warm,
            AdmitFirst = true,
            ImageName = spec.Image,
            RecentlySeenWillDo = true,
        };
        var outcome = spec.Mode == WarmMode.Fork
            ? await ForkAsync(function, attempt, input, argv!, outputFolder, synchronous, clock, cancellationToken).ConfigureAwait(false)
            : await HttpAsync(function, attempt, input, outputFolder, synchronous, clock, cancellationToken).ConfigureAwait(false);

        // What the usage record's GB-seconds are of (Usage/InvocationUsage).
        outcome = outcome with { ReservedMemoryBytes = spec.Resources.MemoryBytes };
        if (outcome.Error == VacatedReason)
        {
            LogVacated(_log, function.Name, function.Version, invocationId);
        }

        LogInvoked(_log, synchronous ? LogLevel.Debug : LogLevel.Information, function.Name, function.Version, invocationId, InvocationStatuses.Name(outcome.Status), outcome.LatencyMs);
        return outcome;
    }

    /// <summary>What an attempt that did not run to its end is for the caller: whose fault, as an HTTP status.</summary>
    private static InvocationOutcome Stopped(FunctionSpec spec, AttemptStop stop, Stopwatch clock, string? containerId) => stop.Kind switch
    {
        AttemptStopKind.NotAdmitted => InvocationOutcome.Failure(InvocationStatus.Refused, 503, stop.Reason, Ms(clock)),
        AttemptStopKind.TenantQuota => InvocationOutcome.Failure(InvocationStatus.Refused, 429, stop.Reason, Ms(clock)) with { Quota = stop.Quota },
        AttemptStopKind.QueueFull => InvocationOutcome.Failure(InvocationStatus.Refused, 429, stop.Reason + $"; try again later, or raise max (now {spec.Max}) or queue (now {spec.Queue})", Ms(clock)),
        AttemptStopKind.NotStarted => InvocationOutcome.Failure(InvocationStatus.Failed, 502, "no container of the function could be started: " + stop.Reason, Ms(clock)),
        AttemptStopKind.Broken when stop.TimedOut => InvocationOutcome.Failure(InvocationStatus.TimedOut, 504, $"the request took longer than its timeout of {Quantities.FormatDuration(spec.Resources.Timeout)}; the container was killed", Ms(clock), containerId),
        AttemptStopKind.Broken => InvocationOutcome.Failure(InvocationStatus.Failed, 502, "the container serving the request failed: " + stop.Reason, Ms(clock), containerId),
        AttemptStopKind.OverQuota => InvocationOutcome.Failure(InvocationStatus.Failed, 502, "the function's command was stopped: " + stop.Reason, Ms(clock), containerId),

        // An HTTP request cannot move to another machine: it ends, and says so.
        AttemptStopKind.Vacated => InvocationOutcome.Failure(InvocationStatus.Failed, 503, VacatedReason, Ms(clock), containerId),
        _ => InvocationOutcome.Failure(InvocationStatus.Failed, 500, "the request was stopped: " + stop.Reason, Ms(clock), containerId),
    };

    /// <summary>The pool's view of a function version: one owner per version (and per algorithm version serving it), never shared.</summary>
    public static WarmSpec WarmSpecOf(FunctionVersion function, IReadOnlyDictionary<string, string> secrets, WorkerOptions worker)
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
            Limits = worker.LimitsFor(spec.Resources, "function", function.Name),
            Tenant = function.Tenant,
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

    private async Task<InvocationOutcome> ForkAsync(FunctionVersion function, Attempt attempt, FunctionInput input, IReadOnlyList<string> argv, string outputFolder, bool inMemory, Stopwatch clock, CancellationToken ct)
    {
        var spec = function.Spec;
        await using var end = await _shell.RunAsync(
            attempt,
            (lease, token) =>
            {
                foreach (var file in input.Files)
                {
                    if (file.Content is { } content)
                    {
                        // A small body held in memory: made once, in its place, with its mode.
                        lease.WriteInput(file.Name, content);
                        continue;
                    }

                    // The staged file is this request's own: moved, not copied, when the folders share a file system.
                    var target = Path.Combine(lease.InDir, file.Name);
                    File.Move(file.Path, target);
                    File.SetUnixFileMode(target, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
                }

                return lease.RunAsync(argv, spec.Env, spec.Resources.Timeout, token);
            },
            ct).ConfigureAwait(false);
        var outcome = end.Result is { } result
            ? await AnswerAsync(function, end.Lease!, result, attempt.Limits, outputFolder, inMemory, clock, ct).ConfigureAwait(false)
            : Stopped(spec, end.Stop!, clock, end.ContainerId);

        // One request at a time in a fork-mode container: its cgroup's growth is the request's (PoolLease).
        return outcome with { ColdStart = end.ColdStart, Resources = end.Result?.Resources };
    }

    /// <summary>A fork request that ran to its end: its exit, then what it left in /out (read as a step's is), the output chosen.</summary>
    private static async Task<InvocationOutcome> AnswerAsync(FunctionVersion function, WarmLease lease, ContainerResult result, OutputLimits limits, string outputFolder, bool inMemory, Stopwatch clock, CancellationToken ct)
    {
        var spec = function.Spec;
        if (result.TimedOut)
        {
            return InvocationOutcome.Failure(InvocationStatus.TimedOut, 504, $"the request took longer than its timeout of {Quantities.FormatDuration(spec.Resources.Timeout)}; its process was killed", Ms(clock), lease.ContainerId, Tail(result.Log));
        }

        if (!result.Succeeded)
        {
            return InvocationOutcome.Failure(InvocationStatus.Failed, 502, $"the function's command {result.Error}", Ms(clock), lease.ContainerId, Tail(result.Log));
        }

        OutputScan scan;
        try
        {
            scan = OutputFolder.Collect(lease.OutFolder, _ => true, limits);
        }
        catch (OutputRefusedException e)
        {
            // Whatever is left is removed, never through a link, when the lease ends (or the container is replaced).
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
        var contentType = spec.ContentType ?? ContentTypes.FromName(name);
        var path = Path.Combine(outputFolder, name);
        FileDigest digest;
        using (var handle = OutputFolder.OpenKept(lease.OutFolder, chosen.Path))
        {
            // A small answer is read straight from the container's /out into memory: no copy to a
            // file of ours to read back (a file made and removed per request, docs/benchmarks.md).
            if (inMemory && chosen.Size <= SmallFile && ReadSmall(handle) is { } content)
            {
                return new InvocationOutcome(InvocationStatus.Succeeded, 200, null, name, contentType, Hashing.Sha256Hex(content), content.Length, lease.ContainerId, null, null, Ms(clock)) { Content = content };
            }

            using var source = new FileStream(handle, FileAccess.Read, 1);
            using var target = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1);
            digest = await Hashing.CopyAsync(source, target, ct, md5: false).ConfigureAwait(false);
        }

        return new InvocationOutcome(InvocationStatus.Succeeded, 200, path, name, contentType, digest.Sha256, digest.Size, lease.ContainerId, null, null, Ms(clock));
    }

    private async Task<InvocationOutcome> HttpAsync(FunctionVersion function, Attempt attempt, FunctionInput input, string outputFolder, bool inMemory, Stopwatch clock, CancellationToken ct)
    {
        await using var end = await _shell.RunAsync(attempt, (lease, token) => ExchangeAsync(function, lease, input, outputFolder, inMemory, clock, token), ct).ConfigureAwait(false);
        return (end.Result ?? Stopped(function.Spec, end.Stop!, clock, end.ContainerId)) with
        {
            ColdStart = end.ColdStart,
            ResourceNote = $"CPU and memory not measured: an http-mode container serves requests side by side (concurrency {function.Spec.Concurrency}), so its cgroup's growth is no one request's",
        };
    }

    /// <summary>An http request: the body to the function's server, its answer (up to Functions:MaxResponseSize) to a file.</summary>
    private async Task<InvocationOutcome> ExchangeAsync(FunctionVersion function, WarmLease lease, FunctionInput input, string outputFolder, bool inMemory, Stopwatch clock, CancellationToken ct)
    {
        var body = input.Files.Count == 1 ? input.Files[0] : throw new PipelinesException("an http-mode request carries one body", retryHelps: false);
        await using var stream = body.Content is null ? new FileStream(body.Path, FileMode.Open, FileAccess.Read, FileShare.Read, 81920, useAsync: true) : null;

        // A small body is sent from memory (held there, or read at once: no thread pool hop per read of the file); a large one is streamed.
        using var request = new HttpRequestMessage(HttpMethod.Post, "http://function/")
        {
            Content = body.Content is { } held ? new ByteArrayContent(held)
                : body.Size <= SmallFile ? new ByteArrayContent(ReadSmall(stream!, body.Size)) : new StreamContent(stream!),
        };
        if (input.ContentType is not null && MediaTypeHeaderValue.TryParse(input.ContentType, out var type))
        {
            request.Content.Headers.ContentType = type;
        }

        request.Content.Headers.ContentLength = body.Size;
        using var response = await lease.SendAsync(request, function.Spec.Resources.Timeout, ct).ConfigureAwait(false);
        var status = (int)response.StatusCode;
        var contentType = response.Content.Headers.ContentType?.ToString() ?? ContentTypes.Binary;

        // The server's own answer is still the function's response; one of 400 or more counts as an error.
        var error = status >= 400 ? $"the function's server answered {status}" : null;
        var outcomeStatus = status >= 400 ? InvocationStatus.Failed : InvocationStatus.Succeeded;

        // A small answer of a stated length is kept in memory for the caller (the handler reads no
        // more than the length it stated); any other is written to a file, counted against Functions:MaxResponseSize.
        if (inMemory && response.Content.Headers.ContentLength is { } length && length <= Math.Min(SmallFile, _options.MaxResponseBytes))
        {
            var content = await response.Content.ReadAsByteArrayAsync(ct).ConfigureAwait(false);
            return new InvocationOutcome(outcomeStatus, status, null, "output", contentType, Hashing.Sha256Hex(content), content.Length, lease.ContainerId, error, null, Ms(clock)) { Content = content };
        }

        var path = Path.Combine(outputFolder, "output");
        FileDigest digest;
        await using (var source = await response.Content.ReadAsStreamAsync(ct).ConfigureAwait(false))
        using (var target = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1))
        {
            digest = await Hashing.CopyAsync(new BoundedStream(source, _options.MaxResponseBytes), target, ct, md5: false).ConfigureAwait(false);
        }

        return new InvocationOutcome(outcomeStatus, status, path, "output", contentType, digest.Sha256, digest.Size, lease.ContainerId, error, null, Ms(clock));
    }

    /// <summary>A file this size or smaller is read whole, at once, rather than streamed.</summary>
    public const int SmallFile = 64 * 1024;

    /// <summary>All of a small file, read directly.</summary>
    public static byte[] ReadSmall(FileStream file, long size)
    {
        var bytes = new byte[size];
        file.ReadExactly(bytes);
        return bytes;
    }

    /// <summary>
    /// All of an opened file when it holds at most <see cref="SmallFile"/> bytes as it is read
    /// (a process of the container may still write to it); null when it holds more.
    /// </summary>
    private static byte[]? ReadSmall(SafeFileHandle file)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(SmallFile + 1);
        try
        {
            var total = 0;
            int read;
            while (total <= SmallFile && (read = RandomAccess.Read(file, buffer.AsSpan(total, SmallFile + 1 - total), total)) > 0)
            {
                total += read;
            }

            return total > SmallFile ? null : buffer[..total];
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private static string Listing(OutputScan scan) => scan.Kept.Count == 0 ? "no file"
        : $"{scan.Kept.Count} file(s): " + string.Join(", ", scan.Kept.Take(5).Select(k => k.Path)) + (scan.Kept.Count > 5 ? ", ..." : "");

    /// <summary>The last lines of what the algorithm wrote, at most <see cref="TailBytes"/> characters.</summary>
    public static string? Tail(string log)
    {
        var text = PrintedText.Quotable(log.TrimEnd());
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

    [LoggerMessage(Message = "function {Function}@{Version} invocation {Id}: {Status} in {LatencyMs} ms")]
    private static partial void LogInvoked(ILogger logger, LogLevel level, string function, int version, string id, string status, double latencyMs);

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
