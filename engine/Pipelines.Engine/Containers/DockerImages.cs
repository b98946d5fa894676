using System.Net;
using Docker.DotNet;
using Docker.DotNet.Models;

namespace Pipelines.Containers;

/// <summary>The images on a Docker engine (<see cref="DockerEngine"/>), through its API: inspect, load, save and pull.</summary>
internal sealed class DockerImages(DockerEngine engine) : IContainerImages
{
    private readonly DockerEngine _engine = engine;

    public async Task<string> ResolveImageAsync(string image, CancellationToken cancellationToken) =>
        (await InspectAsync(image, cancellationToken).ConfigureAwait(false)).ID;

    public async Task<long> ImageSizeAsync(string image, CancellationToken cancellationToken) =>
        (await InspectAsync(image, cancellationToken).ConfigureAwait(false)).Size;

    public async Task<bool> HasImageAsync(string image, CancellationToken cancellationToken)
    {
        try
        {
            await _engine.Client.Images.InspectImageAsync(image, cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (DockerApiException e) when (e.StatusCode == HttpStatusCode.NotFound)
        {
            return false;
        }
        catch (Exception e) when (DockerEngine.IsConnectionFailure(e))
        {
            throw _engine.Unreachable(e);
        }
    }

    /// <summary>
    /// `docker load` through the engine API: the tarball is streamed to the engine, which reports
    /// a broken one in its progress messages rather than in the status code, so those are read too.
    /// </summary>
    public async Task LoadImageAsync(Stream tarball, CancellationToken cancellationToken)
    {
        var errors = new EngineErrors();
        try
        {
            await _engine.Client.Images.LoadImageAsync(
                new ImageLoadParameters { Quiet = true },
                tarball,
                errors,
                cancellationToken).ConfigureAwait(false);
        }
        catch (DockerApiException e) when (e.StatusCode is HttpStatusCode.BadRequest or HttpStatusCode.InternalServerError && !DockerEngine.IsConnectionFailure(e))
        {
            throw new PipelinesException("the Docker engine refused the image tarball: " + e.ResponseBody?.Trim(), retryHelps: false, e);
        }
        catch (Exception e) when (DockerEngine.IsConnectionFailure(e))
        {
            throw _engine.Unreachable(e);
        }

        if (errors.Said is { } said)
        {
            throw new PipelinesException("the Docker engine refused the image tarball: " + said, retryHelps: false);
        }
    }

    /// <summary>`docker save` of one image through the engine API, streamed into <paramref name="destination"/>.</summary>
    public async Task SaveImageAsync(string image, Stream destination, CancellationToken cancellationToken)
    {
        try
        {
            await using var tar = await _engine.Client.Images.SaveImageAsync(image, cancellationToken).ConfigureAwait(false);
            await tar.CopyToAsync(destination, cancellationToken).ConfigureAwait(false);
        }
        catch (DockerApiException e) when (e.StatusCode == HttpStatusCode.NotFound)
        {
            throw new PipelinesException($"image '{image}' is not on the Docker engine at {_engine.Options.Endpoint} (`docker images` lists what is there)", retryHelps: false, e);
        }
        catch (Exception e) when (DockerEngine.IsConnectionFailure(e))
        {
            throw _engine.Unreachable(e);
        }
    }

    /// <summary>`docker pull` through the engine API, with the registry's credentials when given.</summary>
    public async Task PullImageAsync(string reference, RegistryLogin? login, CancellationToken cancellationToken)
    {
        var errors = new EngineErrors();
        // By digest the whole reference is pulled; else the repository at its tag (latest when none).
        var parsed = ImageReference.Parse(reference);
        var (from, tag) = parsed.Digest is not null ? (reference, (string?)null) : (parsed.Repository, parsed.Tag ?? "latest");
        try
        {
            await _engine.Client.Images.CreateImageAsync(
                new ImagesCreateParameters { FromImage = from, Tag = tag },
                login is null ? new AuthConfig() : new AuthConfig { ServerAddress = login.Registry, Username = login.Username, Password = login.Password },
                errors,
                cancellationToken).ConfigureAwait(false);
        }
        catch (DockerApiException e) when (!DockerEngine.IsConnectionFailure(e))
        {
            // The engine answers 500 for a registry out of reach (waited out) and for a refusal
            // by a registry that answered (credentials, a missing repository or tag: not).
            var refused = e.ResponseBody is { } body && RegistryRefusals.Any(r => body.Contains(r, StringComparison.OrdinalIgnoreCase));
            throw new PipelinesException($"the Docker engine could not pull {reference}: {e.ResponseBody?.Trim()}", retryHelps: e.StatusCode >= HttpStatusCode.InternalServerError && !refused, e);
        }
        catch (Exception e) when (DockerEngine.IsConnectionFailure(e))
        {
            throw _engine.Unreachable(e);
        }

        if (errors.Said is { } said)
        {
            throw new PipelinesException($"the Docker engine could not pull {reference}: {said}", retryHelps: false);
        }
    }

    /// <summary>An image as the engine holds it; a missing one is said in one line, and retrying does not help.</summary>
    public PipelinesException Missing(string image, Exception? inner = null) =>
        new($"image '{image}' is not on the Docker engine at {_engine.Options.Endpoint}; build or load it there first (`docker images` lists what is there)", retryHelps: false, inner);

    private async Task<ImageInspectResponse> InspectAsync(string image, CancellationToken cancellationToken)
    {
        try
        {
            return await _engine.Client.Images.InspectImageAsync(image, cancellationToken).ConfigureAwait(false);
        }
        catch (DockerApiException e) when (e.StatusCode == HttpStatusCode.NotFound)
        {
            throw Missing(image, e);
        }
        catch (Exception e) when (DockerEngine.IsConnectionFailure(e))
        {
            throw _engine.Unreachable(e);
        }
    }

    /// <summary>What a registry that answered says when it refuses a pull (distribution's error codes and the engine's own words).</summary>
    private static readonly string[] RegistryRefusals =
        ["unauthorized", "authentication required", "no basic auth credentials", "denied", "manifest unknown", "name unknown", "not found", "invalid reference format"];

    /// <summary>
    /// The errors the engine reports in its progress messages (a load or pull it refuses still
    /// answers 200), kept as they are reported: <see cref="Progress{T}"/> would report them later
    /// on the thread pool, after the call has returned and they were looked at.
    /// </summary>
    private sealed class EngineErrors : IProgress<JSONMessage>
    {
        private readonly List<string> _errors = [];

        /// <summary>Every error reported so far, or null when none was.</summary>
        public string? Said
        {
            get
            {
                lock (_errors)
                {
                    return _errors.Count > 0 ? string.Join("; ", _errors) : null;
                }
            }
        }

        public void Report(JSONMessage value)
        {
            if (value.Error?.Message is { Length: > 0 } error)
            {
                lock (_errors)
                {
                    _errors.Add(error);
                }
            }
        }
    }
}
