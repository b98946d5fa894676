using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Pipelines.Tests.Server;
using Pipelines.Tests.Support;

namespace Pipelines.Tests.Functions;

/// <summary>
/// Functions over a real `pipelines server` on the real PostgreSQL: deploy, versions, list,
/// show, delete, the refusals of invoke that come before any container (404, 413, 400), the
/// dashboard's Functions page, and the CLI's commands against the same server.
/// </summary>
[Collection(ServerCollection.Name)]
[Integration]
public sealed class FunctionsApiTests(ServerFixture fixture)
{
    private const string Image = "pipelines-samples/pair-check:1";

    private static string Echo(string name, string extra = "") => $"""
        name: {name}
        image: {Image}
        command: ["busybox", "cat", "{"{input}"}"]
        max_request_size: 1Ki
        {extra}
        """;

    private static async Task<(HttpStatusCode Status, JsonElement Json)> PostYamlAsync(HttpClient http, string yaml)
    {
        using var response = await http.PostAsync("/api/functions", new StringContent(yaml, Encoding.UTF8, "application/yaml"));
        var text = await response.Content.ReadAsStringAsync();
        return (response.StatusCode, JsonDocument.Parse(text).RootElement.Clone());
    }

    [Fact]
    public async Task A_deploy_makes_a_version_the_same_file_again_none_and_a_change_the_next()
    {
        using var http = fixture.Server.Client();

        var (created, first) = await PostYamlAsync(http, Echo("versions"));
        var (unchanged, again) = await PostYamlAsync(http, Echo("versions") + "\n# only a comment changed\n");
        var (changed, second) = await PostYamlAsync(http, Echo("versions", "idle_timeout: 1m"));

        Assert.Equal((HttpStatusCode.Created, HttpStatusCode.OK, HttpStatusCode.Created), (created, unchanged, changed));
        Assert.Equal(1, first.GetProperty("function").GetProperty("version").GetInt32());
        Assert.StartsWith("sha256:", first.GetProperty("function").GetProperty("imageDigest").GetString(), StringComparison.Ordinal);
        Assert.False(again.GetProperty("created").GetBoolean());
        Assert.Equal(1, again.GetProperty("function").GetProperty("version").GetInt32());
        Assert.Equal((2, 1), (second.GetProperty("function").GetProperty("version").GetInt32(), second.GetProperty("replaced").GetInt32()));

        using var show = await http.GetAsync("/api/functions/versions");
        var detail = JsonDocument.Parse(await show.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal(HttpStatusCode.OK, show.StatusCode);
        Assert.Equal([2, 1], detail.GetProperty("versions").EnumerateArray().Select(v => v.GetProperty("version").GetInt32()));
        Assert.Equal("1m00s", detail.GetProperty("function").GetProperty("idleTimeout").GetString());
    }

    [Fact]
    public async Task List_shows_each_function_and_delete_removes_it_then_answers_404()
    {
        using var http = fixture.Server.Client();
        Assert.Equal(HttpStatusCode.Created, (await PostYamlAsync(http, Echo("doomed"))).Status);

        using (var list = await http.GetAsync("/api/functions"))
        {
            var names = JsonDocument.Parse(await list.Content.ReadAsStringAsync()).RootElement.EnumerateArray().Select(f => f.GetProperty("name").GetString()).ToList();
            Assert.Contains("doomed", names);
        }

        using var deleted = await http.DeleteAsync("/api/functions/doomed");
        using var gone = await http.GetAsync("/api/functions/doomed");
        using var twice = await http.DeleteAsync("/api/functions/doomed");

        Assert.Equal(HttpStatusCode.NoContent, deleted.StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, gone.StatusCode);
        Assert.Equal("application/problem+json", gone.Content.Headers.ContentType?.MediaType);
        Assert.Equal(HttpStatusCode.NotFound, twice.StatusCode);
    }

    [Fact]
    public async Task An_invalid_file_is_refused_with_every_problem_at_its_line()
    {
        using var http = fixture.Server.Client();

        var (status, problem) = await PostYamlAsync(http, "name: bad\nimage: x\ncommand: [x]\nmode: batch\nmax_warm: 1\n");

        Assert.Equal(HttpStatusCode.BadRequest, status);
        var problems = problem.GetProperty("problems").EnumerateArray().Select(p => (p.GetProperty("path").GetString(), p.GetProperty("line").GetInt32())).ToList();
        Assert.Equal([("mode", 4), ("max_warm", 5)], problems);
    }

    [Fact]
    public async Task A_file_naming_an_image_the_engine_lacks_is_refused_with_422_naming_it()
    {
        using var http = fixture.Server.Client();

        var (status, problem) = await PostYamlAsync(http, "name: ghost\nimage: pipelines-tests/no-such-image:404\ncommand: [x]\n");

        Assert.Equal(HttpStatusCode.UnprocessableEntity, status);
        Assert.Contains("pipelines-tests/no-such-image:404", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Invoking_a_missing_function_answers_404_problem_details()
    {
        using var http = fixture.Server.Client();

        using var response = await http.PostAsync("/api/functions/no-such-function/invoke", new ByteArrayContent([1, 2, 3]));
        var problem = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Equal("No such function", problem.GetProperty("title").GetString());
        Assert.Contains("no-such-function", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_body_over_max_request_size_is_refused_with_413_with_or_without_a_length()
    {
        using var http = fixture.Server.Client();
        Assert.Equal(HttpStatusCode.Created, (await PostYamlAsync(http, Echo("small"))).Status);

        // One byte over: the message gives both sizes exactly (a rounded 1Ki for each once read as equal).
        using var sized = await http.PostAsync("/api/functions/small/invoke", new ByteArrayContent(new byte[1025]));

        // No Content-Length: the body is chunked, and counted on past the limit to its end (a
        // little over: its real size), or to a MiB past the limit (far over: "more than").
        var chunks = new StreamContent(new NoLengthStream(new byte[64 * 1024]));
        using var request = new HttpRequestMessage(HttpMethod.Post, "/api/functions/small/invoke") { Content = chunks };
        request.Headers.TransferEncodingChunked = true;
        using var chunked = await http.SendAsync(request);
        var far = new StreamContent(new NoLengthStream(new byte[3 * 1024 * 1024]));
        using var farRequest = new HttpRequestMessage(HttpMethod.Post, "/api/functions/small/invoke") { Content = far };
        farRequest.Headers.TransferEncodingChunked = true;
        using var farOver = await http.SendAsync(farRequest);

        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, sized.StatusCode);
        Assert.Equal(
            "the body is 1,025 bytes; this function takes at most 1,024 bytes (1Ki, max_request_size in its file)",
            JsonDocument.Parse(await sized.Content.ReadAsStringAsync()).RootElement.GetProperty("detail").GetString());
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, chunked.StatusCode);
        Assert.Equal(
            "the body is 65,536 bytes; this function takes at most 1,024 bytes (1Ki, max_request_size in its file)",
            JsonDocument.Parse(await chunked.Content.ReadAsStringAsync()).RootElement.GetProperty("detail").GetString());
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, farOver.StatusCode);
        Assert.Equal(
            "the body is more than 1,049,600 bytes (sent without a Content-Length; read no further); this function takes at most 1,024 bytes (1Ki, max_request_size in its file)",
            JsonDocument.Parse(await farOver.Content.ReadAsStringAsync()).RootElement.GetProperty("detail").GetString());
    }

    [Fact]
    public async Task A_multipart_part_with_a_path_for_a_name_is_refused_with_400_naming_it()
    {
        using var http = fixture.Server.Client();
        Assert.Equal(HttpStatusCode.Created, (await PostYamlAsync(http, Echo("parts"))).Status);
        using var form = new MultipartFormDataContent();
        form.Add(new ByteArrayContent([1]), "file", "../../etc/passwd");

        using var response = await http.PostAsync("/api/functions/parts/invoke", form);
        var problem = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains("not a plain file name", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_dashboard_lists_each_function_with_its_figures()
    {
        using var http = fixture.Server.Client();
        Assert.Equal(HttpStatusCode.Created, (await PostYamlAsync(http, Echo("shown"))).Status);

        using var page = await http.GetAsync("/hangfire/functions");
        var html = await page.Content.ReadAsStringAsync();

        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        Assert.Contains("data-function=\"shown\" data-version=\"1\"", html, StringComparison.Ordinal);
        Assert.Contains(">Functions<", html, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_cli_deploys_lists_shows_and_deletes_and_refuses_a_bad_file_with_exit_2()
    {
        var file = fixture.Temp.Combine("cli-fn.yaml");
        await File.WriteAllTextAsync(file, Echo("from-cli"));
        var bad = fixture.Temp.Combine("bad-fn.yaml");
        await File.WriteAllTextAsync(bad, "name: from-cli\nimage: x\ncommand: [x]\nmin_warm: lots\n");
        string[] server = ["--server", fixture.Server.Url];

        var deployed = await CliRunner.RunAsync(["function", "deploy", file, .. server]);
        var again = await CliRunner.RunAsync(["function", "deploy", file, .. server]);
        var list = await CliRunner.RunAsync(["function", "list", .. server]);
        var show = await CliRunner.RunAsync(["function", "show", "from-cli", .. server]);
        var invalid = await CliRunner.RunAsync(["function", "deploy", bad, .. server]);
        var deleted = await CliRunner.RunAsync(["function", "delete", "from-cli", .. server]);
        var missing = await CliRunner.RunAsync(["function", "show", "from-cli", .. server]);
        var input = fixture.Temp.Combine("in.txt");
        await File.WriteAllTextAsync(input, "hello");
        var invokeMissing = await CliRunner.RunAsync(["invoke", "from-cli", input, .. server]);

        Assert.True(deployed.ExitCode == 0, deployed.ToString());
        Assert.Contains("deployed from-cli version 1", deployed.Stdout, StringComparison.Ordinal);
        Assert.Contains("nothing changed", again.Stdout, StringComparison.Ordinal);
        Assert.Contains("from-cli  version 1  fork", list.Stdout, StringComparison.Ordinal);
        Assert.Contains("command:  busybox cat {input}", show.Stdout, StringComparison.Ordinal);
        Assert.Equal(2, invalid.ExitCode);
        Assert.Contains("line 4, column 11: min_warm: 'lots' is not a whole number", invalid.Stderr, StringComparison.Ordinal);
        Assert.True(deleted.ExitCode == 0, deleted.ToString());
        Assert.Equal(4, missing.ExitCode);
        Assert.Contains("404 there is no function 'from-cli'", missing.Stderr, StringComparison.Ordinal);
        Assert.Equal(4, invokeMissing.ExitCode);
        Assert.Contains("from-cli: 404 there is no function 'from-cli'", invokeMissing.Stderr, StringComparison.Ordinal);
    }

    /// <summary>A stream that does not say its length, so HttpClient sends it chunked.</summary>
    private sealed class NoLengthStream(byte[] data) : MemoryStream(data)
    {
        public override bool CanSeek => false;
    }
}
