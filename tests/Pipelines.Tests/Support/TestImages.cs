using System.Diagnostics;
using Docker.DotNet;
using Docker.DotNet.Models;

namespace Pipelines.Tests.Support;

/// <summary>
/// Images of a test's own on the real engine: each built from a sample image with a label no
/// other image has, so removing one (to give a worker an engine that lacks it) never touches an
/// image others use. Disposing removes them all.
/// </summary>
public sealed class TestImages : IAsyncDisposable
{
    private readonly List<string> _images = [];

    public DockerClient Client { get; } = new DockerClientBuilder().WithEndpoint(new Uri(TestEnvironment.DockerEndpoint)).Build();

    /// <summary>Builds an image of this test's own (a sample image plus a unique label) and returns its tag.</summary>
    public Task<string> NewAsync(string from = "pipelines-samples/pair-check:1") => NewAsync(from, new Dictionary<string, string>());

    /// <summary>Builds an image of this test's own from <paramref name="from"/> with executable files added under /bin (name to content).</summary>
    public async Task<string> NewAsync(string from, IReadOnlyDictionary<string, string> executables)
    {
        var tag = "pipelines-tests/algorithm-" + Guid.NewGuid().ToString("N")[..12] + ":1";
        var context = Directory.CreateTempSubdirectory("algorithm-image-");
        try
        {
            var dockerfile = new System.Text.StringBuilder($"FROM {from}\n");
            foreach (var (name, content) in executables)
            {
                var path = Path.Combine(context.FullName, name);
                await File.WriteAllTextAsync(path, content);
                File.SetUnixFileMode(path, (UnixFileMode)0b111_101_101);
                dockerfile.Append($"COPY {name} /bin/{name}\n");
            }

            dockerfile.Append($"LABEL org.pipelines.test={tag}\n");
            await File.WriteAllTextAsync(Path.Combine(context.FullName, "Dockerfile"), dockerfile.ToString());
            var psi = new ProcessStartInfo("docker", ["build", "-q", "-t", tag, context.FullName]) { RedirectStandardOutput = true, RedirectStandardError = true };
            psi.Environment["DOCKER_BUILDKIT"] = "0";
            using var p = Process.Start(psi)!;
            var err = p.StandardError.ReadToEndAsync();
            await p.StandardOutput.ReadToEndAsync();
            await p.WaitForExitAsync();
            Assert.True(p.ExitCode == 0, "docker build: " + await err);
        }
        finally
        {
            context.Delete(recursive: true);
        }

        _images.Add(tag);
        return tag;
    }

    public async Task<string> IdOfAsync(string image) => (await Client.Images.InspectImageAsync(image)).ID;

    /// <summary>
    /// Removes an image of the test's own from the engine (every tag of it: it has only its own),
    /// never its parent: a sample image retagged meanwhile leaves an untagged parent that others may have pinned.
    /// </summary>
    public async Task RemoveAsync(string idOrTag)
    {
        try
        {
            await Client.Images.DeleteImageAsync(idOrTag, new ImageDeleteParameters { Force = true, NoPrune = true });
        }
        catch (DockerImageNotFoundException)
        {
            // Gone already.
        }
        catch (DockerApiException e) when (e.StatusCode == System.Net.HttpStatusCode.NotFound)
        {
            // Gone already.
        }
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var image in _images)
        {
            await RemoveAsync(image);
        }

        Client.Dispose();
    }
}
