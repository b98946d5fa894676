using Pipelines.Containers;
using Pipelines.Model;
using Pipelines.Tests.Support;
using Resources = Pipelines.Model.Resources;

namespace Pipelines.Tests.Containers;

/// <summary>
/// What the container contract suites share: the engine's seams, the image every engine of
/// the suites has (the busybox sample), a /out folder the container's user may write, and the
/// long-lived containers a test started, removed when it ends whatever it asserted.
/// </summary>
public abstract class ContainerContract : IAsyncLifetime
{
    /// <summary>The sample image with busybox at /bin/busybox that scripts/build-images makes.</summary>
    public const string Present = "pipelines-samples/pair-check:1";

    protected static readonly CancellationToken None = CancellationToken.None;

    private readonly List<string> _started = [];

    private protected abstract ContainerSeams Seams { get; }

    protected TempFolder Temp { get; } = new();

    /// <summary>This test's label on every container it makes.</summary>
    protected string Label { get; } = Guid.NewGuid().ToString("N");

    protected static Resources Limits { get; } = new(0.5, 64L * 1024 * 1024, TimeSpan.FromMinutes(1), 50);

    public Task InitializeAsync()
    {
        // The container's user (65534) writes /out.
        Directory.CreateDirectory(Temp.Combine("out"));
        File.SetUnixFileMode(Temp.Combine("out"), (UnixFileMode)0b111_111_111);
        return Task.CompletedTask;
    }

    public virtual async Task DisposeAsync()
    {
        foreach (var id in _started)
        {
            await Seams.Containers.RemoveAsync(id);
        }

        Temp.Dispose();
    }

    /// <summary>A container of <paramref name="image"/> that runs <c>sh -c <paramref name="script"/></c>, /out bound, labelled with <see cref="Label"/>.</summary>
    protected ContainerSpec Spec(string image, string script, Resources? resources = null, IReadOnlyDictionary<string, string>? env = null) => new(
        image,
        ["sh", "-c", script],
        env ?? new Dictionary<string, string>(),
        [new Mount(Temp.Combine("out"), ContainerLayout.Out, ReadOnly: false)],
        resources ?? Limits,
        new Dictionary<string, string> { ["org.pipelines.test"] = Label });

    /// <summary>Starts a long-lived container of the present image that runs <paramref name="script"/>; it is removed when the test ends.</summary>
    protected async Task<string> StartAsync(string script)
    {
        var image = await Seams.Images.ResolveImageAsync(Present, None);
        var id = await Seams.Containers.StartAsync(Spec(image, script), None);
        _started.Add(id);
        return id;
    }

    /// <summary>What <paramref name="call"/> throws, which must be a <see cref="PipelinesException"/> that helps to retry or not as <paramref name="retryHelps"/> says.</summary>
    protected static async Task<PipelinesException> ThrowsAsync(string verb, Func<Task> call, bool retryHelps)
    {
        var e = await Record.ExceptionAsync(call);
        var refused = e as PipelinesException;
        Assert.True(refused?.RetryHelps == retryHelps, $"{verb}: expected a PipelinesException that {(retryHelps ? "helps" : "does not help")} to retry, got {e?.ToString() ?? "none"}");
        return refused!;
    }

    /// <summary>A container that must still be there, as the engine holds it.</summary>
    protected async Task<ContainerInfo> InspectAsync(string id)
    {
        var info = await Seams.Containers.InspectAsync(id, None);
        Assert.NotNull(info);
        return info;
    }
}
