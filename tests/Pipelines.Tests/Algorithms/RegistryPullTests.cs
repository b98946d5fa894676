using System.Diagnostics;
using Docker.DotNet.Models;
using Pipelines.Tests.Support;
using Xunit.Abstractions;

namespace Pipelines.Tests.Algorithms;

/// <summary>
/// Images named with a registry run anywhere too: a worker process whose engine lacks the
/// pinned image pulls it from the registry (a real one, with credentials from configuration),
/// for one-shot and warm (reuse: true) steps alike, and a tag moved after submission fails the
/// task instead of running another image than the run pinned.
/// </summary>
[Integration]
public sealed class RegistryPullTests(ITestOutputHelper output) : IAsyncLifetime
{
    private readonly TempFolder _temp = new();
    private readonly List<Process> _processes = [];
    private readonly List<string> _pushed = [];
    private AlgorithmFixture _f = null!;
    private RegistryProcess _registry = null!;

    public async Task InitializeAsync()
    {
        _f = await AlgorithmFixture.CreateAsync();
        _registry = await RegistryProcess.StartAsync();
    }

    public async Task DisposeAsync()
    {
        foreach (var p in _processes)
        {
            await CliRunner.StopAsync(p, TimeSpan.FromSeconds(30));
            p.Dispose();
        }

        try
        {
            foreach (var id in _pushed)
            {
                await _f.RemoveImageAsync(id);
            }
        }
        finally
        {
            // Stopped whatever happened above: a registry process must never outlive its test.
            await _registry.DisposeAsync();
            await _f.DisposeAsync();
        }
        _temp.Dispose();
    }

    [Fact]
    public async Task A_worker_whose_engine_lacks_registry_images_pulls_them_with_configured_credentials_for_one_shot_and_warm_steps()
    {
        var oneShot = await PushNewImageAsync("count");
        var warm = await PushNewImageAsync("double");
        var input = Inputs(4);
        var workflow = _temp.Write("pull.yaml", $$"""
            version: 1
            name: pull
            input:
              uri: {{input}}
            steps:
              - name: count
                image: {{oneShot.Name}}
                command: ["sh", "-c", "busybox wc -c < {input} > /out/size.txt"]
                outputs: ["size.txt"]
              - name: double
                image: {{warm.Name}}
                reuse: true
                command: ["sh", "-c", "cat /steps/count/size.txt /steps/count/size.txt > /out/sizes.txt"]
                outputs: ["sizes.txt"]
            output:
              uri: {{_temp.Combine("out")}}
            """);

        var (run, worker) = await SubmitThenStartWorkerAsync(workflow, afterSubmit: async () =>
        {
            // Submission pulled both (the CLI's engine is this engine): take them away again, so the worker must pull.
            await _f.RemoveImageAsync(oneShot.Id);
            await _f.RemoveImageAsync(warm.Id);
        });
        var stdout = await WaitAsync(run);
        Assert.True(run.ExitCode == 0, stdout);
        Assert.Contains("4 succeeded", stdout, StringComparison.Ordinal);
        Assert.True(await _f.Docker.Images.HasImageAsync(oneShot.Id, CancellationToken.None));
        Assert.True(await _f.Docker.Images.HasImageAsync(warm.Id, CancellationToken.None));

        // One pull per image on this worker, recorded with its time and source, and said in the step logs.
        foreach (var image in new[] { oneShot, warm })
        {
            var load = Assert.Single(await _f.Catalog.LoadsAsync(image.Id, 10, CancellationToken.None));
            Assert.Equal(image.Name, load.Source);
            Assert.EndsWith(":" + worker.Id, load.Worker, StringComparison.Ordinal);
            Assert.True(load.Bytes > 0);
            output.WriteLine($"{image.Name}: pulled {load.Bytes} bytes in {load.Seconds:0.00} s");
        }

        foreach (var (step, image) in new[] { ("count", oneShot), ("double", warm) })
        {
            var logs = Directory.GetFiles(_temp.Combine("out"), step + ".log", SearchOption.AllDirectories).Select(File.ReadAllText).ToList();
            Assert.Equal(4, logs.Count);
            Assert.Single(logs, l => l.Contains($"pulled from its registry as {image.Name} in", StringComparison.Ordinal));
        }

        // Each step's provenance: the attempt that pulled it has the pull's seconds (the catalog's), one-shot and warm alike.
        var parquet = Assert.Single(Directory.GetFiles(_temp.Combine("out"), "tasks.parquet", SearchOption.AllDirectories));
        var rows = await ParquetTables.ProvenanceAsync(await File.ReadAllBytesAsync(parquet));
        foreach (var (step, image) in new[] { ("count", oneShot), ("double", warm) })
        {
            var load = Assert.Single(await _f.Catalog.LoadsAsync(image.Id, 10, CancellationToken.None));
            var pulled = Assert.Single(rows, r => r.Step == step && r.ImageLoad == $"pulled from its registry as {image.Name}");
            Assert.Equal(load.Seconds, pulled.ImageLoadSeconds!.Value, 6);
            Assert.All(rows.Where(r => r.Step == step && r != pulled), r => Assert.True(
                r.ImageLoad is null ? r.ImageLoadSeconds is null : r.ImageLoad == $"waited for this worker's pull of it from its registry as {image.Name}" && r.ImageLoadSeconds >= 0,
                $"{step} task {r.TaskIndex}: {r.ImageLoad} {r.ImageLoadSeconds}"));
        }

        var sizes = Directory.GetFiles(_temp.Combine("out"), "sizes.txt", SearchOption.AllDirectories);
        Assert.Equal(4, sizes.Length);
        Assert.All(sizes, f => Assert.Equal(2, File.ReadAllLines(f).Length));
    }

    [Fact]
    public async Task A_tag_moved_after_submission_fails_the_task_naming_both_images_instead_of_running_another_image()
    {
        var pinned = await PushNewImageAsync("moved");
        var workflow = OneStepWorkflow("moved", pinned.Name);

        string? other = null;
        var (run, _) = await SubmitThenStartWorkerAsync(workflow, afterSubmit: async () =>
        {
            // Someone pushes another image under the same tag, and this engine forgets both.
            var replacement = await _f.NewImageAsync();
            other = await _f.IdOfAsync(replacement);
            _pushed.Add(other);
            await PushAsync(replacement, pinned.Name);
            await _f.RemoveImageAsync(other);
            await _f.RemoveImageAsync(pinned.Id);
        });
        var stdout = await WaitAsync(run);
        Assert.NotEqual(0, run.ExitCode);
        var log = File.ReadAllText(Assert.Single(Directory.GetFiles(_temp.Combine("out"), "count.log", SearchOption.AllDirectories)));
        Assert.Contains($"it is now the image {other}, not the {pinned.Id} pinned when the run was submitted", log, StringComparison.Ordinal);
        Assert.Contains("1 failed", stdout, StringComparison.Ordinal);
        Assert.False(await _f.Docker.Images.HasImageAsync(pinned.Id, CancellationToken.None));
    }

    [Fact]
    public async Task A_registry_that_refuses_the_credentials_fails_the_task_with_the_registrys_answer()
    {
        var pinned = await PushNewImageAsync("refused");
        var workflow = OneStepWorkflow("refused", pinned.Name);
        var (run, _) = await SubmitThenStartWorkerAsync(workflow, afterSubmit: () => _f.RemoveImageAsync(pinned.Id), workerPassword: "not-the-password");
        var stdout = await WaitAsync(run);
        Assert.NotEqual(0, run.ExitCode);
        var log = File.ReadAllText(Assert.Single(Directory.GetFiles(_temp.Combine("out"), "count.log", SearchOption.AllDirectories)));
        Assert.Contains($"could not pull {pinned.Name}", log, StringComparison.Ordinal);
        Assert.DoesNotContain("not-the-password", log, StringComparison.Ordinal);
        Assert.DoesNotContain("not-the-password", stdout, StringComparison.Ordinal);
    }

    private sealed record Pushed(string Name, string Id);

    /// <summary>A workflow of one step on one input that counts its bytes with IMAGE.</summary>
    private string OneStepWorkflow(string name, string image) => _temp.Write(name + ".yaml", $$"""
        version: 1
        name: {{name}}
        input:
          uri: {{Inputs(1)}}
        steps:
          - name: count
            image: {{image}}
            command: ["sh", "-c", "busybox wc -c < {input} > /out/size.txt"]
            outputs: ["size.txt"]
        output:
          uri: {{_temp.Combine("out")}}
        """);

    /// <summary>An image of this test's own, pushed to the registry under host/pipelines-tests/NAME-xxxx:1.</summary>
    private async Task<Pushed> PushNewImageAsync(string name)
    {
        var local = await _f.NewImageAsync();
        var remote = $"{_registry.Host}/pipelines-tests/{name}-{Guid.NewGuid().ToString("N")[..8]}:1";
        var id = await _f.IdOfAsync(local);
        _pushed.Add(id);
        await PushAsync(local, remote);
        return new Pushed(remote, id);
    }

    private async Task PushAsync(string local, string remote)
    {
        var colon = remote.LastIndexOf(':');
        await _f.Client.Images.TagImageAsync(local, new ImageTagParameters { RepositoryName = remote[..colon], Tag = remote[(colon + 1)..] });
        var errors = new List<string>();
        await _f.Client.Images.PushImageAsync(
            remote[..colon],
            new ImagePushParameters { Tag = remote[(colon + 1)..] },
            new AuthConfig { ServerAddress = _registry.Host, Username = RegistryProcess.User, Password = RegistryProcess.Password },
            new Progress<JSONMessage>(m =>
            {
                if (m.Error?.Message is { Length: > 0 } e)
                {
                    lock (errors)
                    {
                        errors.Add(e);
                    }
                }
            }));
        lock (errors)
        {
            Assert.True(errors.Count == 0, string.Join("; ", errors));
        }
    }

    private string Inputs(int count)
    {
        var input = _temp.Combine("in-" + Guid.NewGuid().ToString("N")[..6]);
        Directory.CreateDirectory(input);
        foreach (var f in Directory.GetFiles(Path.Combine(TestEnvironment.SampleFastq, "lane1")).Order(StringComparer.Ordinal).Take(count))
        {
            File.Copy(f, Path.Combine(input, Path.GetFileName(f)));
        }

        return input;
    }

    /// <summary>
    /// Submits the run from one process (no local workers), waits until it says it is queued,
    /// does <paramref name="afterSubmit"/>, then starts a worker process to run it.
    /// </summary>
    private async Task<(Process Run, Process Worker)> SubmitThenStartWorkerAsync(string workflow, Func<Task> afterSubmit, string workerPassword = RegistryProcess.Password)
    {
        Dictionary<string, string?> Env(string password) => new()
        {
            ["PIPELINES_POSTGRES"] = TestEnvironment.Postgres,
            ["PIPELINES_Schema"] = _f.Schema,
            ["PIPELINES_Hangfire__Schema"] = _f.Schema + "_hangfire",
            ["PIPELINES_Algorithms__Store"] = _f.StoreUri,
            ["PIPELINES_Algorithms__Registries__tests__Host"] = _registry.Host,
            ["PIPELINES_Algorithms__Registries__tests__Username"] = RegistryProcess.User,
            ["PIPELINES_Algorithms__Registries__tests__Password"] = password,
            ["PIPELINES_Worker__Scratch"] = _temp.Combine("scratch"),
            ["PIPELINES_HOME"] = _temp.Combine("home"),
        };

        var run = CliRunner.Start(["run", workflow, "--local-workers", "0"], Env(RegistryProcess.Password));
        _processes.Add(run);
        using (var limit = new CancellationTokenSource(TimeSpan.FromMinutes(2)))
        {
            while (await run.StandardOutput.ReadLineAsync(limit.Token) is { } line)
            {
                _submitted.AppendLine(line);
                if (line.StartsWith("run ", StringComparison.Ordinal) && line.Contains("remote workers", StringComparison.Ordinal))
                {
                    break;
                }
            }
        }

        Assert.Contains("remote workers", _submitted.ToString(), StringComparison.Ordinal);
        await afterSubmit();
        var worker = CliRunner.Start(["worker", "--concurrency", "2"], Env(workerPassword));
        _processes.Add(worker);
        return (run, worker);
    }

    private readonly System.Text.StringBuilder _submitted = new();

    private async Task<string> WaitAsync(Process run)
    {
        using (var limit = new CancellationTokenSource(TimeSpan.FromMinutes(4)))
        {
            await run.WaitForExitAsync(limit.Token);
        }

        return _submitted + await run.StandardOutput.ReadToEndAsync() + await run.StandardError.ReadToEndAsync();
    }
}
