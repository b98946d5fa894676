using System.Collections.Concurrent;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using Docker.DotNet;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Pipelines.Containers;
using Pipelines.Containers.Warm;
using Pipelines.Functions;
using Pipelines.Hosting;
using Pipelines.Tests.Support;
using Pipelines.Tests.Warm;
using Pipelines.Worker;

namespace Pipelines.Tests.Security;

/// <summary>
/// Hostile functions on real warm containers (tests/images/hostile: busybox): every quota a batch
/// step has holds while a function request runs, checked while it writes, with the same reason as
/// a step's, and the container is clean for the next request. The engine's invoker runs in this
/// process on a real pool, so the tests see each container.
/// </summary>
[Integration]
public sealed class HostileFunctionTests : IAsyncLifetime
{
    private const string Image = "pipelines-tests/hostile:1";

    private readonly TempFolder _temp = new();
    private readonly string _root = Path.Combine("/tmp", "hf-" + Guid.NewGuid().ToString("N")[..8]);
    private readonly List<ServiceProvider> _engines = [];
    private readonly LogLines _logs = new();
    private Tmpfs? _disk;

    public Task InitializeAsync()
    {
        Directory.CreateDirectory(_root);
        return Task.CompletedTask;
    }

    [Fact]
    public async Task A_function_writing_past_its_disk_quota_is_stopped_while_it_writes_and_its_container_serves_the_next_request_clean()
    {
        var (invoker, pool) = Engine();
        var function = await FunctionAsync("""
            name: fill
            image: pipelines-tests/hostile:1
            command: ["sh", "-c", "if grep -q fill /in/input; then yes > /out/out.txt; fi; n=$(ls -A /out | wc -l); echo $n > /out/count.txt"]
            resources: { timeout: 60s, disk: 16Mi }
            max: 1
            """);

        var filled = await InvokeAsync(invoker, function, "fill");
        var next = await InvokeAsync(invoker, function, "count");

        // Stopped by the quota, not its timeout (504), with a step's reason for a function.
        Assert.Equal((InvocationStatus.Failed, 502), (filled.Outcome.Status, filled.Outcome.HttpStatus));
        Assert.Equal("the function's command was stopped: it wrote more than 16Mi to /out, over its quota (resources.disk of function 'fill' is 16Mi)", filled.Outcome.Error);
        Assert.Equal((InvocationStatus.Succeeded, "0"), (next.Outcome.Status, next.Output.Trim()));
        Assert.Equal(filled.Outcome.ContainerId, next.Outcome.ContainerId);
        Assert.Equal(0, pool.Stats().Single().Replaced);
    }

    [Fact]
    public async Task A_function_making_more_files_than_its_quota_is_stopped_while_it_writes()
    {
        var (invoker, _) = Engine();
        var function = await FunctionAsync("""
            name: many
            image: pipelines-tests/hostile:1
            command: ["sh", "-c", "for i in $(seq 300); do : > /out/f$i; done; sleep 60"]
            resources: { timeout: 60s, files: 100 }
            """);

        var (outcome, _) = await InvokeAsync(invoker, function, "x");

        Assert.Equal((InvocationStatus.Failed, 502), (outcome.Status, outcome.HttpStatus));
        Assert.Equal("the function's command was stopped: it wrote more than 100 files and folders to /out, over its quota (resources.files of function 'many' is 100)", outcome.Error);
    }

    [Fact]
    public async Task A_function_nesting_folders_thirty_thousand_deep_is_stopped_and_its_container_emptied_for_the_next_request()
    {
        // Emptying /out after the request walks the tree: by recursion, 30,000 levels overflow the
        // stack and kill this process (and, from Docker:WarmRoot's leftovers, every restart after).
        var (invoker, pool) = Engine();
        var function = await FunctionAsync("""
            name: deep
            image: pipelines-tests/hostile:1
            command: ["sh", "-c", "if grep -q deep /in/input; then mkdeep /out 30000 && sleep 60; fi; n=$(ls -A /out | wc -l); echo $n > /out/count.txt"]
            resources: { timeout: 90s }
            max: 1
            """);

        var deep = await InvokeAsync(invoker, function, "deep");
        var next = await InvokeAsync(invoker, function, "count");

        Assert.Equal((InvocationStatus.Failed, 502), (deep.Outcome.Status, deep.Outcome.HttpStatus));
        Assert.Equal("the function's command was stopped: it nested folders more than 384 deep in /out, deeper than any output path can be (768 bytes)", deep.Outcome.Error);
        Assert.Equal((InvocationStatus.Succeeded, "0"), (next.Outcome.Status, next.Output.Trim()));
        Assert.Equal(deep.Outcome.ContainerId, next.Outcome.ContainerId);
        Assert.Equal(0, pool.Stats().Single().Replaced);
    }

    [Fact]
    public async Task A_function_writing_into_its_control_folder_is_held_to_the_same_quota()
    {
        // /run/pipelines is the container user's (the sockets), a host folder under Docker:WarmRoot like /out.
        var (invoker, _) = Engine();
        var function = await FunctionAsync("""
            name: control
            image: pipelines-tests/hostile:1
            command: ["sh", "-c", "yes > /run/pipelines/fill"]
            resources: { timeout: 60s, disk: 16Mi }
            """);

        var (outcome, _) = await InvokeAsync(invoker, function, "x");

        Assert.Equal((InvocationStatus.Failed, 502), (outcome.Status, outcome.HttpStatus));
        Assert.Equal("the function's command was stopped: it wrote more than 16Mi to /run/pipelines, over its quota (resources.disk of function 'control' is 16Mi)", outcome.Error);
        Assert.InRange(Directory.EnumerateFiles(_root, "*", SearchOption.AllDirectories).Sum(f => new FileInfo(f).Length), 0, 4096);
    }

    [Fact]
    public async Task A_function_filling_the_warm_containers_disk_is_stopped_at_the_reserve_and_the_next_request_is_served()
    {
        // Docker:WarmRoot on a real 64 MiB tmpfs: the reserve is a tenth of it, 6.4Mi.
        _disk = new Tmpfs(_root, "64m");
        var (invoker, _) = Engine();
        var function = await FunctionAsync("""
            name: disk
            image: pipelines-tests/hostile:1
            command: ["sh", "-c", "if grep -q fill /in/input; then head -c 63000000 /dev/zero > /out/big; sleep 60; fi; echo fine > /out/r.txt"]
            resources: { timeout: 60s }
            max: 1
            """);

        var (filled, _) = await InvokeAsync(invoker, function, "fill");
        var (next, answer) = await InvokeAsync(invoker, function, "count");

        Assert.Equal((InvocationStatus.Failed, 502), (filled.Status, filled.HttpStatus));
        Assert.True(
            Regex.IsMatch(filled.Error!, $@"^the function's command was stopped: the warm containers' disk \({Regex.Escape(_root)}/[0-9a-f]+, under Docker:WarmRoot\) has only [0-9.]+[KM]i \([0-9,]+ bytes\) free, less than the 6\.4Mi \(6,710,886 bytes\) kept in reserve \(Worker:MinScratchFree\)$"),
            filled.Error);
        Assert.Equal((InvocationStatus.Succeeded, "fine"), (next.Status, answer.Trim()));
    }

    [Fact]
    public async Task A_function_printing_without_end_keeps_the_engines_json_log_and_its_recorded_output_under_their_caps()
    {
        var (invoker, _) = Engine();
        var function = await FunctionAsync("""
            name: loud
            image: pipelines-tests/hostile:1
            command: ["sh", "-c", "yes 0123456789abcdef | head -c 24000000; (yes 0123456789abcdef | head -c 24000000 > /proc/1/fd/1) 2>&1; (yes 0123456789abcdef | head -c 24000000 > /proc/1/fd/2) 2>&1; echo LAST; exit 3"]
            resources: { timeout: 60s }
            """);

        var (outcome, _) = await InvokeAsync(invoker, function, "x");

        Assert.Equal((InvocationStatus.Failed, 502), (outcome.Status, outcome.HttpStatus));
        Assert.Equal("the function's command exited with code 3", outcome.Error);
        Assert.EndsWith("LAST", outcome.StderrTail, StringComparison.Ordinal);
        Assert.InRange(outcome.StderrTail!.Length, 1, FunctionInvoker.TailBytes + 3);

        // The shell's refusals go to the command's stdout, after its 24 MB and before LAST, so
        // the tail holds them whatever order the engine reads stdout and stderr in (on stderr,
        // stdout's last 64 KiB read after them pushed them out of the tail in one CI run).
        // The container's own output (Docker's json log, capped by Docker:LogMaxSize) is the
        // helper's: the command cannot open the helper's descriptors (/proc/1/fd is closed to it,
        // the helper is not dumpable), so nothing of its 48 MB reached that log.
        Assert.Contains("/proc/1/fd/1: Permission denied", outcome.StderrTail, StringComparison.Ordinal);
        Assert.Contains("/proc/1/fd/2: Permission denied", outcome.StderrTail, StringComparison.Ordinal);
        using var docker = new DockerClientBuilder().WithEndpoint(new Uri(TestEnvironment.DockerEndpoint)).Build();
        var inspect = await docker.Containers.InspectContainerAsync(outcome.ContainerId!);
        var logs = Directory.GetFiles(Path.GetDirectoryName(inspect.LogPath)!, Path.GetFileName(inspect.LogPath) + "*");
        Assert.InRange(logs.Sum(l => new FileInfo(l).Length), 0, 64 * 1024);
    }

    [Fact]
    public async Task A_request_can_neither_read_nor_write_the_helpers_memory_and_the_next_request_is_served_by_an_unchanged_helper()
    {
        // A request's processes run as the helper's user: without more, they could write the
        // helper's memory through /proc/1/mem (or ptrace it) and outlive the kill that ends the
        // request, inside the helper that serves the next one.
        var (invoker, pool) = Engine();
        var function = await FunctionAsync("""
            name: poke
            image: pipelines-tests/hostile:1
            command: ["sh", "-c", "for f in maps environ mem; do if head -c1 /proc/1/$f >/dev/null 2>&1; then echo $f:open; else echo $f:closed; fi; done > /out/out.txt; a=$(grep -m1 rw-p /proc/1/maps | cut -d- -f1); [ -n \"$a\" ] || a=0; printf X | dd of=/proc/1/mem bs=1 seek=$((0x$a)) conv=notrunc 2>/dev/null && echo mem:written >> /out/out.txt; true"]
            resources: { timeout: 30s }
            max: 1
            """);

        var first = await InvokeAsync(invoker, function, "x");
        var next = await InvokeAsync(invoker, function, "y");

        Assert.Equal(InvocationStatus.Succeeded, first.Outcome.Status);
        Assert.Equal("maps:closed\nenviron:closed\nmem:closed\n", first.Output);
        Assert.Equal((InvocationStatus.Succeeded, first.Output), (next.Outcome.Status, next.Output));
        Assert.Equal(first.Outcome.ContainerId, next.Outcome.ContainerId);
        Assert.Equal(0, pool.Stats().Single().Replaced);
    }

    [Fact]
    public async Task An_http_function_whose_server_writes_between_requests_is_retired_at_its_quota_and_the_next_request_gets_a_fresh_container()
    {
        // The server answers, then writes 1 MiB every 20 ms to /run/pipelines while it holds no
        // request. Docker:WarmRoot is a 256 MiB tmpfs: unwatched, it would be full in seconds.
        _disk = new Tmpfs(_root, "256m");
        var (invoker, pool) = Engine();
        var function = await FunctionAsync(WarmTestContext.HttpImage, """
            name: spill
            image: pipelines-examples/warm-http:1
            mode: http
            command: ["/bin/http-example", "/model/words.tsv", "--spill"]
            resources: { timeout: 60s, disk: 16Mi }
            max: 1
            """);

        var (first, _) = await InvokeAsync(invoker, function, "hello");
        var folder = Assert.Single(Directory.GetDirectories(_root));
        using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await pool.WaitForAsync(_ => pool.Removed == 1, wait.Token);
        var (next, _) = await InvokeAsync(invoker, function, "again");

        Assert.Equal(InvocationStatus.Succeeded, first.Status);
        var line = Assert.Single(_logs.Lines, l => l.Contains("is replaced", StringComparison.Ordinal));
        var said = Regex.Match(line, @"is replaced: while it held no request, it wrote more than 16Mi to /run/pipelines, over its quota \(resources\.disk of function 'spill' is 16Mi\); its folders held ([0-9.]+[KMG]i)(?: \(([0-9,]+) bytes\))?$");
        Assert.True(said.Success, line);

        // Held at about its quota (checked every 200 ms here, as a request is): far from the disk's 256 MiB.
        var held = said.Groups[2].Success ? long.Parse(said.Groups[2].Value, NumberStyles.AllowThousands, CultureInfo.InvariantCulture)
            : Pipelines.Model.Quantities.TryParseSize(said.Groups[1].Value, out var exact) ? exact : -1;
        Assert.InRange(held, 16L << 20, 64L << 20);
        Assert.False(Directory.Exists(folder), "the retired container's host folder is gone");
        using var docker = new DockerClientBuilder().WithEndpoint(new Uri(TestEnvironment.DockerEndpoint)).Build();
        await Assert.ThrowsAsync<DockerContainerNotFoundException>(() => docker.Containers.InspectContainerAsync(first.ContainerId!));
        Assert.Equal(InvocationStatus.Succeeded, next.Status);
        Assert.NotEqual(first.ContainerId, next.ContainerId);
        Assert.Equal(1, pool.Stats().Single().Replaced);
    }

    /// <summary>An engine of this process: the pool and the attempt shell as the host wires them, and the function invoker.</summary>
    private (FunctionInvoker Invoker, DockerWarmPool Pool) Engine()
    {
        Assert.True(File.Exists(WarmTestContext.Helper), $"{WarmTestContext.Helper} is missing: run scripts/build-images (it runs scripts/build-native)");
        var config = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Docker:Endpoint"] = TestEnvironment.DockerEndpoint,
            ["Docker:WarmRoot"] = _root,
            ["Docker:WarmHelper"] = WarmTestContext.Helper,
            ["Docker:LogMaxSize"] = "1m",
            ["Worker:Scratch"] = _temp.Combine("scratch"),
            ["Worker:QuotaPollInterval"] = "00:00:00.200",
        }).Build();
        var services = new ServiceCollection();
        services.AddLogging(b => b.AddProvider(_logs));
        services.AddPipelinesEngine(config, worker: false);
        var engine = services.BuildServiceProvider();
        _engines.Add(engine);
        var invoker = new FunctionInvoker(engine.GetRequiredService<AttemptShell>(), engine.GetRequiredService<WorkerOptions>(), FunctionsOptions.From(config), NullLogger<FunctionInvoker>.Instance);
        return (invoker, (DockerWarmPool)engine.GetRequiredService<IWarmPool>());
    }

    private Task<FunctionVersion> FunctionAsync(string yaml) => FunctionAsync(Image, yaml);

    private async Task<FunctionVersion> FunctionAsync(string image, string yaml)
    {
        var spec = FunctionParser.Parse(yaml, "hostile.yaml");
        using var docker = new DockerEngine(new DockerOptions { Endpoint = TestEnvironment.DockerEndpoint });
        var digest = await docker.Images.ResolveImageAsync(image, CancellationToken.None);
        return new FunctionVersion(spec.Name, 1, spec, digest, yaml, "test", DateTimeOffset.UtcNow, "test");
    }

    /// <summary>One request with <paramref name="body"/> as /in/input; the outcome and the output's text when there is one.</summary>
    private async Task<(InvocationOutcome Outcome, string Output)> InvokeAsync(FunctionInvoker invoker, FunctionVersion function, string body)
    {
        var id = Guid.NewGuid().ToString("N");
        var inDir = _temp.Combine(id, "in");
        var outDir = _temp.Combine(id, "out");
        Directory.CreateDirectory(inDir);
        Directory.CreateDirectory(outDir);
        var bytes = Encoding.UTF8.GetBytes(body);
        var path = Path.Combine(inDir, InputNames.Default);
        await File.WriteAllBytesAsync(path, bytes);
        var input = new FunctionInput(inDir, [new InputPart(InputNames.Default, path, bytes.Length)], null, Convert.ToHexStringLower(SHA256.HashData(bytes)), bytes.Length);
        using var cancel = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        var outcome = await invoker.InvokeAsync(function, input, id, outDir, synchronous: true, cancel.Token);
        return (outcome, outcome.Content is { } content ? Encoding.UTF8.GetString(content) : outcome.OutputPath is { } output ? await File.ReadAllTextAsync(output) : "");
    }

    public async Task DisposeAsync()
    {
        foreach (var engine in _engines)
        {
            await engine.DisposeAsync();
        }

        _disk?.Dispose();
        Directory.Delete(_root, recursive: true);
        _temp.Dispose();
    }
}
