using Pipelines.Settings;

namespace Pipelines.Containers;

/// <summary>How containers are run (configuration section Docker).</summary>
public sealed record DockerOptions
{
    /// <summary>The engine's endpoint; DOCKER_HOST, else the local socket.</summary>
    [DefaultText("unix:///var/run/docker.sock")]
    public string Endpoint { get; init; } = Environment.GetEnvironmentVariable("DOCKER_HOST") ?? "unix:///var/run/docker.sock";

    /// <summary>
    /// How long one request to the engine may take (a container's wait and its log stream are
    /// not bounded by it) before it is given up: an engine that stops answering is then an outage,
    /// waited out like one out of reach. Docker.DotNet's own default.
    /// </summary>
    [Positive]
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromSeconds(100);

    /// <summary>The non-root user the algorithm runs as.</summary>
    public string User { get; init; } = "65534:65534";

    /// <summary>Relative CPU weight (the engine's default is 1024): the host's own work comes first.</summary>
    [Positive]
    public long CpuShares { get; init; } = 256;

    /// <summary>
    /// The cgroup our containers run under, in the kernel's idle class (IdleCgroup,
    /// docs/harvesting.md); empty runs them where the engine puts its own. Never the root nor a
    /// slice or scope systemd owns (or a path in one): its class and weight would be every
    /// service's, every user's or every VM's, and systemd rewrites them.
    /// </summary>
    [Matches(@"^$|^(?!/+$)(?!/*(?:-|system|user|machine)\.slice(?:/|$))(?!/*init\.scope(?:/|$))", "a cgroup of our own: not the root, nor -.slice, system.slice, user.slice, machine.slice or init.scope, which systemd owns (write e.g. pipelines)")]
    public string CgroupParent { get; init; } = "pipelines";

    /// <summary>
    /// Whether the parent is put in the idle class: set by the engine for Harvest:Policy when-idle
    /// and never. Off (policy always, a machine of our own), containers run under
    /// CgroupParent-always at the normal weight, still counted as ours.
    /// </summary>
    [NotASetting]
    public bool IdleClass { get; init; }

    /// <summary>Size of the writable /tmp.</summary>
    public string TmpSize { get; init; } = "64m";

    /// <summary>
    /// The cap on each of the two files of the engine's own json log of a container (log-opts
    /// max-size, max-file 2), so a step that prints without end cannot fill the engine's disk; the
    /// engine keeps MaxLogBytes of what is left (the first and last halves).
    /// </summary>
    public string LogMaxSize { get; init; } = "8m";

    /// <summary>At most this much of a step's stdout and stderr is kept: its first and last halves, the middle cut with a note.</summary>
    [Positive]
    public int MaxLogBytes { get; init; } = 1024 * 1024;

    /// <summary>
    /// The engine's static fork helper (engine/native/warm-helper.c, built by scripts/build-native),
    /// mounted read-only as the first process of fork-mode warm containers. PIPELINES_WARM_HELPER,
    /// else warm-helper beside the engine, else .build/native/warm-helper of the checkout it runs from.
    /// </summary>
    [DefaultText("warm-helper")]
    public string WarmHelper { get; init; } = DefaultWarmHelper();

    /// <summary>Where warm containers' host folders (/in, /out, /steps, the control folder) are made; a short path, as a Unix socket's path is at most 107 bytes.</summary>
    [DefaultText("$TMPDIR/pipelines-warm")]
    public string WarmRoot { get; init; } = Path.Combine(Path.GetTempPath(), "pipelines-warm");

    /// <summary>How long a warm container may take to start and answer on its socket before it counts as broken.</summary>
    [Positive]
    public TimeSpan WarmStartTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>How long past a fork-mode request's own timeout the helper may take to answer before its container counts as hung.</summary>
    [Positive]
    public TimeSpan WarmHungGrace { get; init; } = TimeSpan.FromSeconds(5);

    private static string DefaultWarmHelper()
    {
        if (Environment.GetEnvironmentVariable("PIPELINES_WARM_HELPER") is { Length: > 0 } configured)
        {
            return configured;
        }

        var beside = Path.Combine(AppContext.BaseDirectory, "warm-helper");
        if (File.Exists(beside))
        {
            return beside;
        }

        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var built = Path.Combine(dir.FullName, ".build", "native", "warm-helper");
            if (File.Exists(built))
            {
                return built;
            }
        }

        return beside;
    }
}
