using System.Diagnostics;
using System.Net;
using System.Text;
using System.Text.Json;
using Pipelines.Storage;
using Pipelines.Tests.Support;

namespace Pipelines.Tests.Server;

/// <summary>
/// `pipelines server` without PostgreSQL, as a user starts it on one machine: every role in one
/// process on the in-memory stores and Hangfire.InMemory, the algorithm store a folder. A
/// function is deployed and invoked (sync and async); an algorithm is pushed and a run uses it,
/// loading its image from the folder onto an engine that lacks it; a registered workflow starts a
/// run when a file lands in its bucket; the start line says that nothing of it outlives the
/// process, and the CLI's in-process algorithm and trigger commands say where the catalog and
/// the ledger are instead.
/// </summary>
[Integration]
public sealed class EmbeddedServerTests(EmbeddedServerTests.Embedded fixture) : IClassFixture<EmbeddedServerTests.Embedded>
{
    private const string ForkImage = "pipelines-examples/warm-fork:1";

    private ServerProcess Server => fixture.Server;

    private TempFolder Temp => fixture.Temp;

    /// <summary>One embedded server for the class (no PIPELINES_POSTGRES: CliRunner leaves it out), with a bucket for its trigger.</summary>
    public sealed class Embedded : IAsyncLifetime
    {
        private readonly string _warmRoot = Path.Combine("/tmp", "ew-" + Guid.NewGuid().ToString("N")[..8]);

        public TempFolder Temp { get; } = new();

        public TestImages Images { get; } = new();

        public ObjectStoreFactory Stores { get; } = new(TestEnvironment.S3);

        public string Bucket { get; private set; } = null!;

        public ServerProcess Server { get; private set; } = null!;

        public async Task InitializeAsync()
        {
            Bucket = await TestEnvironment.NewBucketAsync(Stores.S3Client);
            Server = await ServerProcess.StartAsync(new Dictionary<string, string?>
            {
                ["PIPELINES_HOME"] = Temp.Combine("home"),
                ["PIPELINES_Worker__Concurrency"] = "2",
                ["PIPELINES_Algorithms__Store"] = Temp.Combine("algorithms"),
                ["PIPELINES_Docker__WarmRoot"] = _warmRoot,
                ["PIPELINES_Submit__LocalRoots__0"] = Temp.Path,
                ["PIPELINES_Triggers__PollInterval"] = "1s",
            });
        }

        public async Task DisposeAsync()
        {
            await Server.DisposeAsync();
            await Images.DisposeAsync();
            Stores.Dispose();
            Temp.Dispose();
            if (Directory.Exists(_warmRoot))
            {
                Directory.Delete(_warmRoot, recursive: true);
            }
        }
    }

    [Fact]
    public async Task A_function_deployed_on_an_embedded_server_answers_now_and_later_and_the_start_line_says_nothing_outlives_it()
    {
        using var http = Server.Client();
        using (var deployed = await http.PostAsync("/api/functions", new StringContent($"name: wc\nimage: {ForkImage}\ncommand: [\"wordcount\"]\nmax: 1\n", Encoding.UTF8, "application/yaml")))
        {
            Assert.True(deployed.StatusCode == HttpStatusCode.Created, await deployed.Content.ReadAsStringAsync());
        }

        using var now = await http.PostAsync("/api/functions/wc/invoke?filename=now.txt", new StringContent("one two"));
        var nowBody = await now.Content.ReadAsStringAsync();
        using var queued = await http.PostAsync("/api/functions/wc/invoke?async=true&filename=later.txt", new StringContent("one two three"));
        var done = await UntilAsync(http, queued.Headers.Location!.OriginalString, j => j.GetProperty("status").GetString() is not ("queued" or "running"));
        using var later = await http.GetAsync(done.GetProperty("outputUrl").GetString());

        Assert.True(now.StatusCode == HttpStatusCode.OK, nowBody);
        Assert.Equal("file\tlines\twords\tbytes\nnow.txt\t0\t2\t7\n", nowBody);
        Assert.Equal(HttpStatusCode.Accepted, queued.StatusCode);
        Assert.Equal("succeeded", done.GetProperty("status").GetString());
        Assert.Equal("file\tlines\twords\tbytes\nlater.txt\t0\t3\t13\n", await later.Content.ReadAsStringAsync());
        using var invocations = JsonDocument.Parse(await http.GetStringAsync("/api/functions/wc/invocations"));
        Assert.Equal([true, false], invocations.RootElement.EnumerateArray().Select(i => i.GetProperty("async").GetBoolean()));
        Assert.All(invocations.RootElement.EnumerateArray(), i => Assert.Equal("succeeded", i.GetProperty("status").GetString()));
        Assert.Contains("embedded mode (no PostgreSQL): runs, functions and their invocations, triggers and the algorithm catalog are kept in this process's memory and nothing of them outlives it", Server.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_algorithm_pushed_to_an_embedded_server_is_used_by_a_run_that_loads_its_image_from_the_folder_store()
    {
        var image = await fixture.Images.NewAsync("pipelines-samples/fastq-stats:1");
        var id = await fixture.Images.IdOfAsync(image);
        var pushed = await CliRunner.RunAsync(["algorithm", "push", "stats", "1", image, "--server", Server.Url]);
        Assert.True(pushed.ExitCode == 0, pushed.ToString());
        Assert.Contains($"pushed stats@1: {id}", pushed.Stdout, StringComparison.Ordinal);
        Assert.True(File.Exists(Path.Combine(Temp.Combine("algorithms"), "images", "sha256", id["sha256:".Length..] + ".tar")));
        await fixture.Images.RemoveAsync(image);

        var input = Directory.CreateDirectory(Temp.Combine("in")).FullName;
        foreach (var f in Directory.EnumerateFiles(Path.Combine(TestEnvironment.SampleFastq, "lane1"), "*.fastq").Order(StringComparer.Ordinal).Take(4))
        {
            File.Copy(f, Path.Combine(input, Path.GetFileName(f)));
        }

        var workflow = Temp.Write("stats.yaml", $$"""
            version: 1
            name: embedded-stats
            input: { uri: "{{input}}/", include: ["*.fastq"], batch: 2 }
            steps:
              - name: stats
                image: algorithm://stats@1
                command: ["fastq-stats", "--out", "/out/stats.tsv", "{inputs}"]
                outputs: ["*.tsv"]
            gather:
              - { name: stats, from: stats/*.tsv, format: tsv, header: false, columns: [file, reads, bases, gc, mean_quality], to: [csv] }
            output: { uri: "{{Temp.Combine("out")}}/" }
            """);
        var run = await CliRunner.RunAsync(["run", workflow, "--server", Server.Url]);

        Assert.True(run.ExitCode == 0, run.ToString());
        var runId = run.Stdout.Split(' ', 3)[1].TrimEnd(':');
        var folder = Path.Combine(Temp.Combine("out"), runId);
        Assert.Equal(5, File.ReadAllLines(Path.Combine(folder, "results", "stats.csv")).Length);
        Assert.Contains(id, await File.ReadAllTextAsync(Path.Combine(folder, "run.json")), StringComparison.Ordinal);
        Assert.Equal(id, (await fixture.Images.Client.Images.InspectImageAsync(id)).ID);
        using var http = Server.Client();
        using var loads = JsonDocument.Parse(await http.GetStringAsync("/api/algorithms/loads"));
        var load = Assert.Single(loads.RootElement.EnumerateArray());
        Assert.Equal(id, load.GetProperty("digest").GetString());
        Assert.Contains("images/sha256/", load.GetProperty("source").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_workflow_registered_with_an_embedded_server_starts_a_run_when_a_file_lands_in_its_bucket()
    {
        using var http = Server.Client();
        var yaml = $$"""
            version: 1
            name: embedded-trigger
            input: { uri: "s3://{{fixture.Bucket}}/in/" }
            steps:
              - { name: count, image: "pipelines-samples/pair-check:1", command: ["sh", "-c", "busybox wc -c < {input} > /out/size.txt"], outputs: ["size.txt"] }
            output: { uri: "s3://{{fixture.Bucket}}/out/" }
            trigger: { uri: "s3://{{fixture.Bucket}}/in/", include: ["*.fastq"], settle: 1s }
            """;
        using (var registered = await http.PostAsync("/api/workflows", new StringContent(yaml, Encoding.UTF8, "application/yaml")))
        {
            Assert.True(registered.StatusCode == HttpStatusCode.Created, await registered.Content.ReadAsStringAsync());
        }

        var input = fixture.Stores.Open($"s3://{fixture.Bucket}/in/");
        await input.Store.PutAsync(input.Key("landed.fastq"), Encoding.UTF8.GetBytes("@r1\nACGT\n+\nIIII\n"), "text/plain", CancellationToken.None);
        var runs = await UntilAsync(http, "/api/runs?workflow=embedded-trigger", j => j.GetProperty("items").EnumerateArray().Any(r => r.GetProperty("state").GetString() is "succeeded" or "failed" or "cancelled"));

        var run = Assert.Single(runs.GetProperty("items").EnumerateArray());
        Assert.Equal(("succeeded", 1), (run.GetProperty("state").GetString(), run.GetProperty("counts").GetProperty("succeeded").GetInt32()));
        using var workflows = JsonDocument.Parse(await http.GetStringAsync("/api/workflows"));
        Assert.Equal(1, Assert.Single(workflows.RootElement.EnumerateArray()).GetProperty("runsStarted").GetInt64());
    }

    [Fact]
    public async Task Without_PostgreSQL_the_clis_algorithm_and_trigger_commands_say_the_catalog_and_ledger_are_a_servers()
    {
        var list = await CliRunner.RunAsync(["algorithm", "list"], new Dictionary<string, string?> { ["PIPELINES_HOME"] = Temp.Combine("home") });
        var triggers = await CliRunner.RunAsync(["triggers"], new Dictionary<string, string?> { ["PIPELINES_HOME"] = Temp.Combine("home") });

        Assert.Equal((1, 1), (list.ExitCode, triggers.ExitCode));
        Assert.Contains("without PostgreSQL the catalog lives in the memory of one `pipelines server`: push through it with --server URL", list.Stderr, StringComparison.Ordinal);
        Assert.Contains("without PostgreSQL the ledger lives in the memory of one `pipelines server`: register through its /api/workflows", triggers.Stderr, StringComparison.Ordinal);
    }

    /// <summary>Reads a JSON resource until it satisfies <paramref name="done"/>; a minute at most.</summary>
    private static async Task<JsonElement> UntilAsync(HttpClient http, string url, Func<JsonElement, bool> done)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            using var doc = JsonDocument.Parse(await http.GetStringAsync(url));
            if (done(doc.RootElement))
            {
                return doc.RootElement.Clone();
            }

            Assert.True(clock.Elapsed < TimeSpan.FromMinutes(1), $"{url} is still {doc.RootElement}");
            await Task.Delay(250);
        }
    }
}
