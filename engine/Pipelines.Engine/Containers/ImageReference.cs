namespace Pipelines.Containers;

/// <summary>
/// A Docker image reference taken apart, the one home of Docker's naming rule for every part
/// that needs it (a pull, a registry's credentials, the RO-Crate's image entity, a message that
/// names the repository): <c>[registry/]path[:tag][@digest]</c>, where the first part of the path
/// is a registry when it has a '.' or a ':' or is <c>localhost</c>.
/// </summary>
/// <param name="Repository">The reference without its tag and digest: <c>host:5000/team/tool</c>.</param>
/// <param name="Tag">The tag, or null when none is written.</param>
/// <param name="Digest">What follows the '@': a digest (for an <c>algorithm://</c> reference, its version or channel), or null.</param>
/// <param name="Registry">The registry host (with its port), or null for Docker Hub and for an
/// <c>algorithm://</c> reference, which names no registry.</param>
internal sealed record ImageReference(string Repository, string? Tag, string? Digest, string? Registry)
{
    /// <summary>How a pushed algorithm is named instead of an image (Algorithms/AlgorithmReference), here because a reference that starts with it names no registry.</summary>
    public const string AlgorithmScheme = "algorithm://";

    /// <summary>Whether <paramref name="image"/> names a pushed algorithm rather than an image.</summary>
    public static bool IsAlgorithm(string image) => image.StartsWith(AlgorithmScheme, StringComparison.Ordinal);

    public static ImageReference Parse(string image)
    {
        var at = image.IndexOf('@', IsAlgorithm(image) ? AlgorithmScheme.Length : 0);
        var (bare, digest) = at >= 0 ? (image[..at], image[(at + 1)..]) : (image, (string?)null);
        var colon = bare.LastIndexOf(':');
        var (repository, tag) = colon > bare.LastIndexOf('/') ? (bare[..colon], bare[(colon + 1)..]) : (bare, (string?)null);
        var slash = repository.IndexOf('/', StringComparison.Ordinal);
        var first = slash > 0 ? repository[..slash] : null;
        var registry = IsAlgorithm(image) || first is null ? null
            : first.Contains('.', StringComparison.Ordinal) || first.Contains(':', StringComparison.Ordinal) || first == "localhost" ? first
            : null;
        return new ImageReference(repository, tag, digest, registry);
    }
}
