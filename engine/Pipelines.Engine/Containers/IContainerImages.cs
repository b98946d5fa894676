namespace Pipelines.Containers;

/// <summary>
/// The images on the engine that runs our containers: what a name is now, whether one is there
/// and how big, and moving them in (load, pull) and out (save). For every verb a missing image is
/// a <see cref="PipelinesException"/> that says so and does not help to retry, and an engine out of
/// reach is one that does.
/// </summary>
public interface IContainerImages
{
    /// <summary>The immutable id (sha256 digest) of an image, given by name or by id, that is on the engine.</summary>
    Task<string> ResolveImageAsync(string image, CancellationToken cancellationToken);

    /// <summary>Whether an image (by id or name) is on the engine.</summary>
    Task<bool> HasImageAsync(string image, CancellationToken cancellationToken);

    /// <summary>The size in bytes of an image on the engine (its layers, as `docker images` shows it).</summary>
    Task<long> ImageSizeAsync(string image, CancellationToken cancellationToken);

    /// <summary>Loads a `docker save` tarball; a tarball the engine refuses does not help to retry.</summary>
    Task LoadImageAsync(Stream tarball, CancellationToken cancellationToken);

    /// <summary>Writes one image as a `docker save` tarball into <paramref name="destination"/>.</summary>
    Task SaveImageAsync(string image, Stream destination, CancellationToken cancellationToken);

    /// <summary>
    /// Pulls an image from the registry its reference names, with <paramref name="login"/> when
    /// given. A registry out of reach helps to retry; a registry that refuses (credentials, a
    /// missing repository or tag) does not.
    /// </summary>
    Task PullImageAsync(string reference, RegistryLogin? login, CancellationToken cancellationToken);

    /// <summary>
    /// What a verb says of an image that is not on the engine: the one text, so that an image a
    /// tenant may not run (<see cref="Algorithms.AlgorithmService.CheckImageAccessAsync"/>) reads as a missing one.
    /// </summary>
    PipelinesException Missing(string image, Exception? inner = null) =>
        new($"image '{image}' is not on the Docker engine; build or load it there first (`docker images` lists what is there)", retryHelps: false, inner);
}
