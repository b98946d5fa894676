namespace Pipelines.Containers;

/// <summary>How containers are run (configuration section Docker).</summary>
public sealed record DockerOptions
{
    /// <summary>The engine's endpoint; DOCKER_HOST, else the local socket.</summary>
    public string Endpoint { get; init; } = Environment.GetEnvironmentVariable("DOCKER_HOST") ?? "unix:///var/run/docker.sock";

    /// <summary>The non-root user the algorithm runs as.</summary>
    public string User { get; init; } = "65534:65534";

    /// <summary>Relative CPU weight (the engine's default is 1024): the host's own work comes first.</summary>
    public long CpuShares { get; init; } = 256;

    /// <summary>
    /// The cgroup our containers run under, in the kernel's idle class (IdleCgroup,
    /// docs/harvesting.md); empty runs them where the engine puts its own.
    /// </summary>
    public string CgroupParent { get; init; } = "pipelines";

    /// <summary>Size of the writable /tmp.</summary>
    public string TmpSize { get; init; } = "64m";

    /// <summary>
    /// The cap on each of the two files of the engine's own json log of a container (log-opts
    /// max-size, max-file 2), so a step that prints without end cannot fill the engine's disk; the
    /// engine keeps MaxLogBytes of what is left (the first and last halves).
    /// </summary>
    public string LogMaxSize { get; init; } = "8m";

    /// <summary>At most this much of a step's stdout and stderr is kept: its first and last halves, the middle cut with a note.</summary>
    public int MaxLogBytes { get; init; } = 1024 * 1024;
}
