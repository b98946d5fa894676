using Pipelines.Containers;
using Pipelines.Tests.Support;
using Pipelines.Tests.Worker.Parts;
using Resources = Pipelines.Model.Resources;

namespace Pipelines.Tests.Containers;

/// <summary>
/// What each verb of the container seams promises (Containers/: images, a container per run,
/// long-lived containers, the engine's liveness), run against every engine the product or its
/// tests have: the real Docker engine, and the scripted engine the parts' tests run on. A
/// second runtime (Podman, Kubernetes) would be one more class at the end of this file. The
/// verbs that act on every container of the process are in <see cref="ProcessWideContract"/>.
/// </summary>
public abstract class ContainerSeamsContract : ContainerContract
{
    /// <summary>An image no engine of the suites has.</summary>
    private const string Missing = "pipelines-samples/no-such-image:9";

    /// <summary>An image id no engine of the suites has.</summary>
    private static readonly string MissingId = "sha256:" + new string('0', 64);

    /// <summary>The same engine's seams, its engine out of reach.</summary>
    private protected abstract ContainerSeams OutOfReach { get; }

    [Fact]
    public async Task A_present_image_resolves_to_its_sha256_id_by_name_and_by_id_and_has_a_size()
    {
        var id = await Seams.Images.ResolveImageAsync(Present, None);

        Assert.Matches("^sha256:[0-9a-f]{64}$", id);
        Assert.Equal(id, await Seams.Images.ResolveImageAsync(id, None));
        Assert.Equal(id, await Seams.Runtime.ResolveImageAsync(Present, None));
        Assert.True(await Seams.Images.HasImageAsync(Present, None));
        Assert.True(await Seams.Images.HasImageAsync(id, None));
        Assert.True(await Seams.Images.ImageSizeAsync(id, None) > 0);
    }

    [Fact]
    public async Task A_missing_image_is_a_PipelinesException_that_names_it_and_does_not_help_to_retry()
    {
        Assert.False(await Seams.Images.HasImageAsync(Missing, None));
        var byName = new (string Verb, Func<Task> Call)[]
        {
            ("resolve", () => Seams.Images.ResolveImageAsync(Missing, None)),
            ("the runtime's resolve", () => Seams.Runtime.ResolveImageAsync(Missing, None)),
            ("size", () => Seams.Images.ImageSizeAsync(Missing, None)),
            ("save", () => Seams.Images.SaveImageAsync(Missing, Stream.Null, None)),
        };
        var byId = new (string Verb, Func<Task> Call)[]
        {
            ("run", () => Seams.Runtime.RunAsync(Spec(MissingId, "exit 0"), None)),
            ("start", () => Seams.Containers.StartAsync(Spec(MissingId, "exit 0"), None)),
        };

        foreach (var (verb, call, image) in byName.Select(v => (v.Verb, v.Call, Missing)).Concat(byId.Select(v => (v.Verb, v.Call, MissingId))))
        {
            var e = await ThrowsAsync(verb, call, retryHelps: false);
            Assert.Contains(image, e.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task A_saved_image_loads_back_and_a_tarball_that_is_not_one_is_refused_for_good()
    {
        var id = await Seams.Images.ResolveImageAsync(Present, None);
        using var tarball = new MemoryStream();

        await Seams.Images.SaveImageAsync(id, tarball, None);
        var saved = tarball.Length;
        tarball.Position = 0;
        await Seams.Images.LoadImageAsync(tarball, None);

        Assert.True(saved > 0);
        Assert.True(await Seams.Images.HasImageAsync(id, None));
        await ThrowsAsync("load a broken tarball", () => Seams.Images.LoadImageAsync(new MemoryStream("not an image"u8.ToArray()), None), retryHelps: false);
    }

    [Fact]
    public async Task A_pull_from_a_registry_out_of_reach_is_waited_out()
    {
        // Loopback, where nothing listens on port 1.
        const string Unreachable = "127.0.0.1:1/pipelines/none:1";

        var e = await ThrowsAsync("pull", () => Seams.Images.PullImageAsync(Unreachable, new RegistryLogin("127.0.0.1:1", "someone", "secret"), None), retryHelps: true);

        Assert.Contains(Unreachable, e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("secret", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_run_gives_back_its_exit_code_and_its_output_and_errors_in_one_log()
    {
        var result = await RunAsync("echo to-out; echo to-err >&2; exit 3");

        Assert.Equal(3, result.ExitCode);
        Assert.False(result.Succeeded);
        Assert.Equal("exited with code 3", result.Error);
        Assert.Equal(["to-err", "to-out"], Lines(result.Log));
    }

    [Fact]
    public async Task A_run_past_its_timeout_is_killed_and_says_so()
    {
        var result = await RunAsync("sleep 60", Limits with { Timeout = TimeSpan.FromSeconds(1) });

        Assert.True(result.TimedOut);
        Assert.False(result.Succeeded);
        Assert.Equal("timed out and was killed", result.Error);
    }

    [Fact]
    public async Task A_runs_variables_and_secrets_reach_it_and_its_log_has_stars_for_the_secrets()
    {
        var image = await Seams.Images.ResolveImageAsync(Present, None);
        var spec = Spec(image, "echo $PLAIN $TOKEN", env: new Dictionary<string, string> { ["PLAIN"] = "plain-value" }) with
        {
            Secrets = new Dictionary<string, string> { ["TOKEN"] = "s3cr3t-value" },
        };

        var result = await Seams.Runtime.RunAsync(spec, None);

        Assert.True(result.Succeeded, result.Log);
        Assert.Equal("plain-value ***\n", result.Log);
    }

    [Fact]
    public async Task A_cancelled_run_ends_with_the_cancellation()
    {
        var image = await Seams.Images.ResolveImageAsync(Present, None);
        using var cancel = new CancellationTokenSource();
        var run = Seams.Runtime.RunAsync(Spec(image, "echo here > /out/started; sleep 60"), cancel.Token);

        await Until(() => File.Exists(Temp.Combine("out", "started")) || run.IsCompleted, "the run to start");
        Assert.False(run.IsCompleted, "the run ended before it was cancelled");
        await cancel.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => run);
    }

    [Fact]
    public async Task A_started_container_runs_with_its_labels_and_the_lock_down()
    {
        var id = await StartAsync("sleep 60");

        var info = await InspectAsync(id);

        Assert.Equal((id, ContainerRunState.Running, (long?)null), (info.Id, info.State, info.ExitCode));
        Assert.Equal(Label, info.Labels["org.pipelines.test"]);
        Assert.Equal("true", info.Labels[ContainerLabels.Managed]);
        Assert.Equal(ProcessOwner.Current, info.Labels[ContainerLabels.Owner]);
        var l = info.LockDown;
        Assert.DoesNotMatch("^(|0|root)(:|$)", l.User);
        Assert.Equal("none", l.Network);
        Assert.True(l.ReadOnlyRoot);
        Assert.Contains("ALL", l.DroppedCapabilities);
        Assert.True(l.NoNewPrivileges);
        Assert.Equal((Limits.MemoryBytes, Limits.Cpus, (long?)Limits.Pids), (l.MemoryBytes, l.Cpus, l.Pids));
    }

    [Fact]
    public async Task A_container_that_ends_gives_back_its_exit_code_and_its_log_until_it_is_removed()
    {
        var id = await StartAsync("echo hello; echo oops >&2; exit 5");

        Assert.Equal(5, await Seams.Containers.WaitAsync(id, None));
        Assert.Equal(["hello", "oops"], Lines(await Seams.Containers.ReadLogAsync(id, 4096, None)));
        var ended = await InspectAsync(id);
        await Seams.Containers.RemoveAsync(id);

        Assert.Equal((ContainerRunState.Exited, (long?)5), (ended.State, ended.ExitCode));
        Assert.Null(await Seams.Containers.InspectAsync(id, None));
    }

    [Fact]
    public async Task A_killed_container_ends_and_a_removed_one_is_gone_and_either_may_be_said_again()
    {
        var id = await StartAsync("sleep 60");

        await Seams.Containers.KillAsync(id);
        Assert.Equal(137, await Seams.Containers.WaitAsync(id, None));
        await Seams.Containers.KillAsync(id);
        await Seams.Containers.RemoveAsync(id);
        await Seams.Containers.RemoveAsync(id);
        await Seams.Containers.KillAsync(id);

        Assert.Null(await Seams.Containers.InspectAsync(id, None));
        await ThrowsAsync("wait", () => Seams.Containers.WaitAsync(id, None), retryHelps: false);
        await ThrowsAsync("read the log", () => Seams.Containers.ReadLogAsync(id, 4096, None), retryHelps: false);
    }

    [Fact]
    public async Task An_engine_out_of_reach_is_a_PipelinesException_that_helps_to_retry_for_every_verb_but_remove_suspend_and_resume()
    {
        await Seams.Liveness.PingAsync(None);
        var down = OutOfReach;
        var image = await Seams.Images.ResolveImageAsync(Present, None);
        const string Id = "0123456789ab";

        var verbs = new (string Verb, Func<Task> Call)[]
        {
            ("ping", () => down.Liveness.PingAsync(None)),
            ("resolve", () => down.Images.ResolveImageAsync(Present, None)),
            ("the runtime's resolve", () => down.Runtime.ResolveImageAsync(Present, None)),
            ("has", () => down.Images.HasImageAsync(image, None)),
            ("size", () => down.Images.ImageSizeAsync(image, None)),
            ("load", () => down.Images.LoadImageAsync(new MemoryStream("not an image"u8.ToArray()), None)),
            ("save", () => down.Images.SaveImageAsync(image, Stream.Null, None)),
            ("pull", () => down.Images.PullImageAsync("127.0.0.1:1/pipelines/none:1", null, None)),
            ("run", () => down.Runtime.RunAsync(Spec(image, "exit 0"), None)),
            ("start", () => down.Containers.StartAsync(Spec(image, "exit 0"), None)),
            ("wait", () => down.Containers.WaitAsync(Id, None)),
            ("kill", () => down.Containers.KillAsync(Id)),
            ("read the log", () => down.Containers.ReadLogAsync(Id, 4096, None)),
            ("inspect", () => down.Containers.InspectAsync(Id, None)),
            ("sweep", () => down.Sweep.RemoveLeftoversAsync(_ => false, None)),
        };

        // Not suspend and resume: they act on the containers the engine started, through their
        // freezer files, and need the engine only for one whose files are not ours (a remote
        // engine): a harvester freezes its containers while the engine does not answer.

        foreach (var (verb, call) in verbs)
        {
            var e = await ThrowsAsync(verb, call, retryHelps: true);
            Assert.Contains("cannot reach", e.Message, StringComparison.Ordinal);
        }

        // Left for the sweep once the engine is back.
        await down.Containers.RemoveAsync(Id);
    }

    private async Task<ContainerResult> RunAsync(string script, Resources? resources = null)
    {
        var image = await Seams.Images.ResolveImageAsync(Present, None);
        return await Seams.Runtime.RunAsync(Spec(image, script, resources), None);
    }

    /// <summary>A log's lines in order of their text: the order of stdout's lines against stderr's is the pipes' own, and not a promise.</summary>
    private static string[] Lines(string log) => [.. log.Split('\n', StringSplitOptions.RemoveEmptyEntries).Order(StringComparer.Ordinal)];

    /// <summary>Waits for something the container does, looking every 50 ms, for at most a minute.</summary>
    private static async Task Until(Func<bool> done, string what)
    {
        var deadline = DateTime.UtcNow.AddMinutes(1);
        while (!done())
        {
            Assert.True(DateTime.UtcNow < deadline, $"waited a minute for {what}");
            await Task.Delay(50);
        }
    }
}

/// <summary>The contract against the real Docker engine, under a cgroup parent of this suite's own.</summary>
[Integration]
public sealed class DockerSeamsContractTests : ContainerSeamsContract
{
    private readonly DockerEngine _engine = new(new DockerOptions { Endpoint = TestEnvironment.DockerEndpoint, CgroupParent = "pipelines-seams-tests" });
    private readonly DockerEngine _down = new(new DockerOptions { Endpoint = "unix:///tmp/pipelines-seams-tests-no-engine.sock", CgroupParent = "pipelines-seams-tests" });

    private protected override ContainerSeams Seams => ContainerSeams.Of(_engine);

    private protected override ContainerSeams OutOfReach => ContainerSeams.Of(_down);

    public override async Task DisposeAsync()
    {
        await base.DisposeAsync();
        _engine.Dispose();
        _down.Dispose();
    }
}

/// <summary>The contract against the scripted engine of the parts' tests (Worker/Parts/ScriptedRuntime), running <see cref="ScriptedRuntime.Shell"/>.</summary>
[Unit]
public sealed class ScriptedSeamsContractTests : ContainerSeamsContract
{
    private readonly ScriptedRuntime _engine = new(ScriptedRuntime.Shell);
    private readonly ScriptedRuntime _down = new(ScriptedRuntime.Shell) { Reachable = false };

    public ScriptedSeamsContractTests()
    {
        _engine.AddImage(Present);
        _down.AddImage(Present);
    }

    private protected override ContainerSeams Seams => new(_engine, _engine, _engine, _engine, _engine, _engine);

    private protected override ContainerSeams OutOfReach => new(_down, _down, _down, _down, _down, _down);
}
