using Pipelines.Storage;
namespace Pipelines.Containers.Warm;

/// <summary>One request's hold on a container of <see cref="DockerWarmPool"/>.</summary>
internal sealed class PoolLease(DockerWarmPool pool, DockerWarmPool.OwnerPool owner, WarmContainer container, bool coldStart) : WarmLease
{
    public override bool ColdStart => coldStart;

    private int _disposed;
    private int _running;
    private bool _stepsGiven;
    private CancellationTokenSource? _httpDeadline;
    private RunTimeout? _httpTimeout;

    public override string ContainerId => container.Id;

    public override string InDir => ForkOnly(container.InDir);

    public override string OutDir => ForkOnly(container.OutDir);

    /// <summary>The steps folder, which only the engine writes in (it is read-only in the container): emptied after a lease that was given it.</summary>
    public override string StepsDir
    {
        get
        {
            var path = ForkOnly(container.StepsDir);
            _stepsGiven = true;
            return path;
        }
    }

    public override string? ControlDir => container.ControlDir;

    internal override NoFollow.SafeDirectory OutFolder
    {
        get
        {
            ObjectDisposedException.ThrowIf(_disposed != 0, this);
            _ = ForkOnly(container.OutDir);
            return container.Out!;
        }
    }

    internal override NoFollow.SafeDirectory InFolder
    {
        get
        {
            ObjectDisposedException.ThrowIf(_disposed != 0, this);
            _ = ForkOnly(container.InDir);
            return container.In!;
        }
    }

    /// <summary>Whether /out is known to be empty (<see cref="OutEmptied"/>): not read again when the lease ends.</summary>
    private bool _outEmpty;

    internal override void OutEmptied() => _outEmpty = true;

    /// <summary>Whether /in is known to be empty (<see cref="InEmptied"/>): not read again when the lease ends.</summary>
    private bool _inEmpty;

    internal override void InEmptied() => _inEmpty = true;

    public override void WriteInput(string name, ReadOnlySpan<byte> content)
    {
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        var shownAs = Path.Combine(ForkOnly(container.InDir), name);
        using var file = NoFollow.CreateFile(container.In!, name, InputMode, shownAs);
        RandomAccess.Write(file, content, 0);
    }

    /// <summary>An input file's mode: the container's user reads it, only root (the engine) writes it.</summary>
    internal const UnixFileMode InputMode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead;

    public override async Task<ContainerResult> RunAsync(IReadOnlyList<string> command, IReadOnlyDictionary<string, string> env, TimeSpan timeout, CancellationToken cancellationToken)
    {
        if (container.Spec.Mode != WarmMode.Fork)
        {
            throw new InvalidOperationException($"{container.Spec.Owner} is in http mode: send requests with SendAsync");
        }

        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        if (Interlocked.Exchange(ref _running, 1) != 0)
        {
            throw new InvalidOperationException("a fork-mode lease runs one command at a time");
        }

        try
        {
            if (container.Broken is { } broken)
            {
                throw new WarmContainerException($"the warm container {container.ShortId} of {container.Spec.Owner} cannot serve: {broken}; it is replaced");
            }

            var frame = WarmProtocol.Request(command, env);
            var log = new BoundedLog(pool.Options.MaxLogBytes);

            // The engine keeps the deadline, counting only time the container could run: the
            // helper is told when the time is up, and is hung when it has not answered a grace later.
            using var deadline = new RunTimeout(pool.Suspensions, timeout, pool.Options.WarmHungGrace);

            // One request at a time in a fork-mode container: what its cgroup's counters grow by
            // while the request runs is the request's (with the helper's fork and cleanup, tiny).
            var whyNot = pool.Unmeasurable;
            var cgroup = whyNot is null ? pool.CgroupOf(container) : null;
            var peakReset = cgroup is not null && CgroupMeter.ResetPeak(cgroup, container.Counters);
            var before = cgroup is null ? null : CgroupMeter.Read(cgroup, container.Counters);
            try
            {
                var exit = await container.Fork!.RunAsync(frame, log, deadline.Expired, deadline.Hung, cancellationToken).ConfigureAwait(false);
                if (exit.Cancelled && cancellationToken.IsCancellationRequested)
                {
                    // Stopped by the caller (a vacate, a cancel): what the request printed until then is kept for the step's log.
                    throw new ContainerStoppedException(LogMask.Apply(log.ToString(), container.Spec.Secrets), cancellationToken);
                }

                if (exit.NotEmptied)
                {
                    // The request's own end stands; the container does not serve another.
                    container.Broken = "its helper could not empty /tmp, /dev/shm or /dev/mqueue after a request";
                }

                var result = new ContainerResult(exit.ExitCode, exit.TimedOut, exit.OomKilled, LogMask.Apply(log.ToString(), container.Spec.Secrets), exit.Run);
                return CgroupMeter.Measured(result, before is null ? null : CgroupMeter.Read(cgroup!, container.Counters).Since(before, peakReset), whyNot);
            }
            catch (OperationCanceledException) when (deadline.Hung.IsCancellationRequested)
            {
                container.Broken = $"its helper did not answer within {pool.Options.WarmHungGrace.TotalSeconds:0.#} s after the request's timeout ({timeout.TotalSeconds:0.###} s)";
                await pool.KillAsync(container).ConfigureAwait(false);
                throw new WarmContainerException(await Reason(log).ConfigureAwait(false), timedOut: true);
            }
            catch (BrokenChannelException e)
            {
                container.Broken = container.Exited.IsCompleted ? $"it ended (exit code {await ExitCodeAsync().ConfigureAwait(false)})" : e.Message;
                await pool.KillAsync(container).ConfigureAwait(false);
                throw new WarmContainerException(await Reason(log).ConfigureAwait(false), inner: e, engineLost: EngineLost);
            }
        }
        finally
        {
            Volatile.Write(ref _running, 0);
        }
    }

    public override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, TimeSpan timeout, CancellationToken cancellationToken)
    {
        if (container.Spec.Mode != WarmMode.Http)
        {
            throw new InvalidOperationException($"{container.Spec.Owner} is in fork mode: run commands with RunAsync");
        }

        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        if (container.Broken is { } broken)
        {
            throw new WarmContainerException($"the warm container {container.ShortId} of {container.Spec.Owner} cannot serve: {broken}; it is replaced");
        }

        // Only the path and query are the caller's: the socket says where the request goes.
        var uri = request.RequestUri;
        request.RequestUri = new Uri(HttpChannel.BaseAddress, uri is null ? "/" : uri.IsAbsoluteUri ? uri.PathAndQuery : uri.OriginalString);

        // The timeout covers the response's body too, which the caller reads while it holds the lease.
        // It counts only time the container could run, as every timeout does (RunTimeout).
        _httpDeadline?.Dispose();
        _httpTimeout?.Dispose();
        _httpTimeout = new RunTimeout(pool.Suspensions, timeout);
        _httpDeadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _httpTimeout.Expired);
        var deadline = _httpDeadline;
        deadline.Token.Register(() =>
        {
            if (!cancellationToken.IsCancellationRequested && Volatile.Read(ref _disposed) == 0)
            {
                container.Broken ??= $"a request took longer than its timeout ({timeout.TotalSeconds:0.###} s)";
                _ = pool.KillAsync(container);
            }
        });
        try
        {
            return await container.Http!.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, deadline.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (deadline.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            throw new WarmContainerException($"the request to {container.Spec.Owner} timed out after {timeout.TotalSeconds:0.###} s; its container {container.ShortId} was killed and is replaced", timedOut: true);
        }
        catch (HttpRequestException e)
        {
            container.Broken ??= container.Exited.IsCompleted ? $"it ended (exit code {await ExitCodeAsync().ConfigureAwait(false)})" : "its server broke the HTTP exchange: " + e.Message;
            await pool.KillAsync(container).ConfigureAwait(false);
            throw new WarmContainerException($"the warm container {container.ShortId} of {container.Spec.Owner} failed the request: {container.Broken}; it is replaced{await pool.LogTailAsync(container).ConfigureAwait(false)}", inner: e, engineLost: EngineLost);
        }
    }

    public override void Discard(string reason) => container.Broken ??= "discarded: " + reason;

    public override ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return ValueTask.CompletedTask;
        }

        _httpDeadline?.Dispose();
        _httpTimeout?.Dispose();
        if (container.Spec.Mode == WarmMode.Fork && container.Broken is null)
        {
            try
            {
                // /tmp is the helper's to empty; the bound folders are the engine's, as root, through
                // the descriptors the container holds open from its start (no path walked per request).
                if (!_inEmpty)
                {
                    NoFollow.EmptyFolder(container.In!, container.InDir);
                }

                if (!_outEmpty)
                {
                    NoFollow.EmptyFolder(container.Out!, container.OutDir);
                }

                if (_stepsGiven)
                {
                    NoFollow.EmptyFolder(container.Steps!, container.StepsDir);
                }

                NoFollow.EmptyFolder(container.Control!, container.ControlDir);
                NoFollow.ResetFolder(container.Out!, (UnixFileMode)0b111_101_101, container.OutFlags, container.OutDir);
                NoFollow.ResetFolder(container.Control!, (UnixFileMode)0b111_000_000, container.ControlFlags, container.ControlDir);
            }
            catch (Exception e) when (e is PipelinesException or IOException or UnauthorizedAccessException)
            {
                container.Broken = "its folders could not be emptied: " + e.Message;
            }
        }

        pool.Release(owner, container);
        return ValueTask.CompletedTask;
    }

    private string ForkOnly(string path) => container.Spec.Mode == WarmMode.Fork
        ? path
        : throw new InvalidOperationException($"{container.Spec.Owner} is in http mode: it has no bound /in, /out or /steps");

    /// <summary>Whether the container ended while the engine could not say how (its wait failed): the engine's outage, not the request's.</summary>
    private bool EngineLost => container.Exited.IsFaulted;

    private async Task<long> ExitCodeAsync()
    {
        try
        {
            return await container.Exited.ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            DockerWarmPool.LogReplaced(pool.Log, container.ShortId, container.Spec.Owner, "its exit code is unknown: " + e.Message);
            return -1;
        }
    }

    private async Task<string> Reason(BoundedLog log)
    {
        var request = PrintedText.Quotable(LogMask.Apply(log.Tail(2000), container.Spec.Secrets).Trim());
        var own = await pool.LogTailAsync(container).ConfigureAwait(false);
        return $"the warm container {container.ShortId} of {container.Spec.Owner} failed the request: {container.Broken}; it is replaced"
            + (request.Length > 0 ? "; the request's output ends: " + request : "")
            + own;
    }
}
