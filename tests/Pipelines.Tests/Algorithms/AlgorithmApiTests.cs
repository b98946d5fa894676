using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using Pipelines.Tests.Support;

namespace Pipelines.Tests.Algorithms;

/// <summary>/api/algorithms on a real `pipelines server` process: push with the tarball as the body, list, refusals, delete.</summary>
[Integration]
public sealed class AlgorithmApiTests : IAsyncLifetime
{
    private readonly TempFolder _temp = new();
    private readonly string _warmRoot = Path.Combine("/tmp", "aw-" + Guid.NewGuid().ToString("N")[..8]);
    private AlgorithmFixture _f = null!;
    private ServerProcess _server = null!;

    public async Task InitializeAsync()
    {
        _f = await AlgorithmFixture.CreateAsync();
        _server = await ServerProcess.StartAsync(new Dictionary<string, string?>
        {
            ["PIPELINES_POSTGRES"] = TestEnvironment.Postgres,
            ["PIPELINES_Schema"] = _f.Schema,
            ["PIPELINES_Hangfire__Schema"] = _f.Schema + "_hangfire",
            ["PIPELINES_HOME"] = _temp.Combine("home"),
            ["PIPELINES_Server__Bucket"] = _f.Bucket,
            ["PIPELINES_Server__Roles"] = "api",
            ["PIPELINES_Algorithms__Store"] = _f.StoreUri,
            ["PIPELINES_Algorithms__MaxImageBytes"] = "3000000",
            ["PIPELINES_Functions__Output"] = $"s3://{_f.Bucket}/functions/",
            ["PIPELINES_Docker__WarmRoot"] = _warmRoot,
        });
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        await _f.DisposeAsync();
        _temp.Dispose();
        if (Directory.Exists(_warmRoot))
        {
            Directory.Delete(_warmRoot, recursive: true);
        }
    }

    private async Task<HttpResponseMessage> PostAsync(HttpClient http, string path, string file)
    {
        await using var body = File.OpenRead(file);
        var content = new StreamContent(body);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/x-tar");
        return await http.PostAsync(path, content);
    }

    [Fact]
    public async Task A_tarball_posted_as_the_body_is_pushed_listed_and_deleted_and_a_bad_one_is_refused_with_nothing_stored()
    {
        using var http = _server.Client();
        var image = await _f.NewImageAsync();
        var id = await _f.IdOfAsync(image);
        var tar = await _f.SaveAsync(image, _temp.Combine("image.tar"));

        var junk = _temp.Write("junk.tar", new string('j', 4000));
        using (var refused = await PostAsync(http, "/api/algorithms/api-test/versions/1", junk))
        {
            Assert.Equal(HttpStatusCode.UnprocessableEntity, refused.StatusCode);
            Assert.Contains("is not a tar archive", await refused.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        var big = _temp.Combine("big.tar");
        await File.WriteAllBytesAsync(big, new byte[3_500_000]);
        using (var tooBig = await PostAsync(http, "/api/algorithms/api-test/versions/1", big))
        {
            Assert.Equal(HttpStatusCode.RequestEntityTooLarge, tooBig.StatusCode);
            Assert.Contains("Algorithms:MaxImageBytes", await tooBig.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        using (var wrong = await PostAsync(http, "/api/algorithms/api-test/versions/1?digest=sha256:" + new string('1', 64), tar))
        {
            Assert.Equal(HttpStatusCode.UnprocessableEntity, wrong.StatusCode);
        }

        Assert.Empty(await _f.KeysAsync());

        using (var created = await PostAsync(http, "/api/algorithms/api-test/versions/1?notes=from%20the%20api&digest=" + Uri.EscapeDataString(id), tar))
        {
            Assert.Equal(HttpStatusCode.Created, created.StatusCode);
            using var doc = JsonDocument.Parse(await created.Content.ReadAsStringAsync());
            Assert.Equal(id, doc.RootElement.GetProperty("version").GetProperty("digest").GetString());
        }

        using (var second = await PostAsync(http, "/api/algorithms/api-test/versions/2", tar))
        {
            Assert.Equal(HttpStatusCode.Created, second.StatusCode);
        }

        Assert.Equal(["algorithms/images/sha256/" + id["sha256:".Length..] + ".tar"], await _f.KeysAsync());
        using (var list = JsonDocument.Parse(await http.GetStringAsync("/api/algorithms")))
        {
            var a = Assert.Single(list.RootElement.EnumerateArray());
            Assert.Equal("api-test", a.GetProperty("name").GetString());
            Assert.Equal(2, a.GetProperty("versions").GetArrayLength());
        }

        // The CLI's push through the server: a local image is saved here and sent as the body.
        var cli = await CliRunner.RunAsync(["algorithm", "push", "api-test", "3", image, "--server", _server.Url, "--notes", "from the cli"], new Dictionary<string, string?>());
        Assert.True(cli.ExitCode == 0, cli.ToString());
        Assert.Contains($"pushed api-test@3: {id}", cli.Stdout, StringComparison.Ordinal);
        Assert.Contains("(already there: another version has the same image)", cli.Stdout, StringComparison.Ordinal);
        var refusedByCli = await CliRunner.RunAsync(["algorithm", "push", "api-test", "4", junk, "--server", _server.Url], new Dictionary<string, string?>());
        Assert.Equal(1, refusedByCli.ExitCode);
        Assert.Contains("is not a tar archive", refusedByCli.Stderr, StringComparison.Ordinal);

        Assert.Equal(HttpStatusCode.UnprocessableEntity, (await http.DeleteAsync("/api/algorithms/api-test/versions/1")).StatusCode);
        Assert.Equal(HttpStatusCode.NoContent, (await http.DeleteAsync("/api/algorithms/api-test/versions/2")).StatusCode);
        Assert.Equal(HttpStatusCode.NoContent, (await http.DeleteAsync("/api/algorithms/api-test/versions/3")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await http.DeleteAsync("/api/algorithms/api-test/versions/2")).StatusCode);
    }

    [Fact]
    public async Task A_function_of_a_pushed_algorithm_pins_its_digest_at_deploy_and_the_server_lacking_the_image_loads_it_once()
    {
        using var http = _server.Client();
        var image = await _f.NewImageAsync("pipelines-examples/warm-fork:1");
        var pushed = await _f.Service().PushLocalImageAsync("wc", "1", image, null, "tester", CancellationToken.None);
        await _f.RemoveImageAsync(image);
        Assert.False(await _f.Docker.Images.HasImageAsync(pushed.Version.Digest, CancellationToken.None));

        using (var deployed = await http.PostAsync("/api/functions", new StringContent("""
            name: wc
            image: algorithm://wc@stable
            command: ["wordcount"]
            output: counts.tsv
            max: 1
            """, System.Text.Encoding.UTF8, "application/yaml")))
        {
            var body = await deployed.Content.ReadAsStringAsync();
            Assert.True(deployed.IsSuccessStatusCode, body);
            Assert.Contains(pushed.Version.Digest, body, StringComparison.Ordinal);
        }

        var answers = await Task.WhenAll(Enumerable.Range(1, 3).Select(async i =>
        {
            using var r = await http.PostAsync($"/api/functions/wc/invoke?filename=r{i}.txt", new StringContent(string.Join(' ', Enumerable.Repeat("w", i))));
            return (r.StatusCode, await r.Content.ReadAsStringAsync());
        }));
        Assert.All(answers, a => Assert.True(a.StatusCode == HttpStatusCode.OK, a.Item2));
        Assert.Contains(answers, a => a.Item2.Contains("r3.txt\t0\t3\t5", StringComparison.Ordinal));
        Assert.Single(await _f.Catalog.LoadsAsync(pushed.Version.Digest, 10, CancellationToken.None));

        // The loaded image (tagged again from its tarball) is removed by the fixture once the server and its warm containers are gone.
    }
}
