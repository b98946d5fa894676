using Pipelines.Model;

namespace Pipelines.Containers;

/// <summary>Runs one locked-down container to its end. Knows nothing of storage or workflows.</summary>
public interface IContainerRuntime
{
    /// <summary>The immutable id (sha256 digest) of an image present on the engine.</summary>
    Task<string> ResolveImageAsync(string image, CancellationToken cancellationToken);

    /// <summary>
    /// Makes sure an image pinned by digest is on the engine before a container of it starts
    /// elsewhere (a warm pool): how it got there and how long this caller spent on it when it
    /// had to be loaded or pulled, null when it was there. <paramref name="pullFrom"/> is the name the image was pinned from: when it names a
    /// registry, the image is pulled from there instead of loaded from the algorithm store. A
    /// runtime that cannot load images has nothing to do.
    /// </summary>
    Task<ImageArrival?> EnsureImageAsync(string digest, CancellationToken cancellationToken, bool recentlySeenWillDo = false, string? pullFrom = null) => Task.FromResult<ImageArrival?>(null);

    /// <summary>Creates, starts, waits for, reads the logs of and removes a container.</summary>
    Task<ContainerResult> RunAsync(ContainerSpec spec, CancellationToken cancellationToken);
}

/// <summary>A host folder visible inside the container.</summary>
public sealed record Mount(string HostPath, string ContainerPath, bool ReadOnly);

/// <summary>What to run and under which limits. The first command element is the program.</summary>
public sealed record ContainerSpec(
    string ImageId,
    IReadOnlyList<string> Command,
    IReadOnlyDictionary<string, string> Env,
    IReadOnlyList<Mount> Mounts,
    Resources Resources,
    IReadOnlyDictionary<string, string> Labels)
{
    /// <summary>
    /// Variables added to <see cref="Env"/> in the container only: the runtime never records,
    /// logs or returns them, and masks their values in the log it returns.
    /// </summary>
    public IReadOnlyDictionary<string, string> Secrets { get; init; } = new Dictionary<string, string>();

    /// <summary>
    /// The name <see cref="ImageId"/> was pinned from (as the workflow wrote it), so that a
    /// worker whose engine lacks the image can pull it from its registry; null when unknown.
    /// </summary>
    public string? ImageName { get; init; }
}

/// <summary>How a container ended. <see cref="Log"/> holds stdout and stderr as they came.</summary>
public sealed record ContainerResult(long ExitCode, bool TimedOut, bool OomKilled, string Log, TimeSpan Duration)
{
    /// <summary>What the run used, as the container's cgroup counted it; null columns where it was not measured.</summary>
    public ResourceUse Resources { get; init; } = ResourceUse.None;

    /// <summary>Why a column of <see cref="Resources"/> is null: one line each, for the step's log.</summary>
    public IReadOnlyList<string> ResourceNotes { get; init; } = [];

    /// <summary>How the attempt got its image when the engine lacked it (loaded, pulled, or waited for); null when it was there.</summary>
    public ImageArrival? Image { get; init; }

    /// <summary>This result with how its image arrived, and the line that says so first in its log.</summary>
    public ContainerResult WithImage(string digest, ImageArrival? image) =>
        image is null ? this : this with { Image = image, Log = image.LogLine(digest) + "\n" + Log };

    public bool Succeeded => ExitCode == 0 && !TimedOut && !OomKilled;

    public string? Error => TimedOut ? "timed out and was killed"
        : OomKilled ? "was killed for exceeding its memory limit"
        : ExitCode != 0 ? $"exited with code {ExitCode}"
        : null;
}
