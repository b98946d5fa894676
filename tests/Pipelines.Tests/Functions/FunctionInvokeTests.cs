using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Pipelines.Tests.Server;

namespace Pipelines.Tests.Functions;

/// <summary>
/// Invocations end to end on real warm containers: fork and http functions return their
/// outputs, a crash is a 502 with the algorithm's last lines, a hang past the timeout a 504, a
/// full queue a 429, a read key may not invoke, an async invocation runs on a separate worker
/// process, and every invocation is recorded with its hashes, container and latency.
/// </summary>
[Collection(ServerCollection.Name)]
[Integration]
public sealed class FunctionInvokeTests(FunctionServerFixture fixture) : IClassFixture<FunctionServerFixture>
{
    private const string ForkImage = "pipelines-examples/warm-fork:1";
    private const string HttpImage = "pipelines-examples/warm-http:1";

    private async Task DeployAsync(HttpClient http, string yaml)
    {
        using var response = await http.PostAsync("/api/functions", new StringContent(yaml, Encoding.UTF8, "application/yaml"));
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode is HttpStatusCode.Created or HttpStatusCode.OK, $"{(int)response.StatusCode}: {body}");
    }

    private static async Task<(HttpStatusCode Status, string Body, HttpResponseMessage Response)> InvokeAsync(HttpClient http, string name, HttpContent content, string query = "")
    {
        var response = await http.PostAsync($"/api/functions/{name}/invoke{query}", content);
        return (response.StatusCode, await response.Content.ReadAsStringAsync(), response);
    }

    private static async Task<JsonElement> GetJsonAsync(HttpClient http, string url)
    {
        using var response = await http.GetAsync(url);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, $"{url}: {(int)response.StatusCode} {text}");
        return JsonDocument.Parse(text).RootElement.Clone();
    }

    [Fact]
    public async Task A_fork_function_answers_many_requests_from_one_warm_container_and_records_each()
    {
        using var http = fixture.Client();
        await DeployAsync(http, $"""
            name: wordcount
            image: {ForkImage}
            command: ["wordcount"]
            output: counts.tsv
            max: 1
            """);

        var answers = new List<(HttpStatusCode, string, string?)>();
        for (var i = 0; i < 5; i++)
        {
            var text = string.Join(' ', Enumerable.Repeat("word", i + 1));
            var (status, body, response) = await InvokeAsync(http, "wordcount", new StringContent(text), $"?filename=r{i}.txt");
            answers.Add((status, body, response.Content.Headers.ContentType?.MediaType));
            response.Dispose();
        }

        Assert.All(answers, a => Assert.Equal(HttpStatusCode.OK, a.Item1));
        Assert.All(answers, a => Assert.Equal("text/tab-separated-values", a.Item3));
        Assert.Equal("file\tlines\twords\tbytes\nr4.txt\t0\t5\t24\n", answers[4].Item2);

        var invocations = await GetJsonAsync(http, "/api/functions/wordcount/invocations");
        var rows = invocations.EnumerateArray().ToList();
        Assert.Equal(5, rows.Count);
        Assert.All(rows, r => Assert.Equal("succeeded", r.GetProperty("status").GetString()));
        Assert.Single(rows.Select(r => r.GetProperty("containerId").GetString()).Distinct());
        var last = rows[0];
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes("word word word word word"))), last.GetProperty("inputSha256").GetString());
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(answers[4].Item2))), last.GetProperty("outputSha256").GetString());
        Assert.StartsWith("sha256:", last.GetProperty("imageDigest").GetString(), StringComparison.Ordinal);
        Assert.True(last.GetProperty("latencyMs").GetDouble() > 0);
    }

    [Fact]
    public async Task A_multipart_body_puts_each_part_at_in_under_its_file_name()
    {
        using var http = fixture.Client();
        await DeployAsync(http, $"name: wordcount-many\nimage: {ForkImage}\ncommand: [\"wordcount\"]\n");
        using var form = new MultipartFormDataContent
        {
            { new StringContent("a b c"), "file", "one.txt" },
            { new StringContent("x\ny\n"), "file", "two.txt" },
        };

        var (status, body, response) = await InvokeAsync(http, "wordcount-many", form);
        response.Dispose();

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("file\tlines\twords\tbytes\none.txt\t0\t3\t5\ntwo.txt\t2\t2\t4\n", body);
    }

    [Fact]
    public async Task A_command_taking_one_input_refuses_two_files_with_400()
    {
        using var http = fixture.Client();
        await DeployAsync(http, $"name: single\nimage: {ForkImage}\ncommand: [\"cp\", \"{{input}}\", \"/out/copy\"]\n");
        using var form = new MultipartFormDataContent
        {
            { new StringContent("a"), "file", "one.txt" },
            { new StringContent("b"), "file", "two.txt" },
        };

        var (status, body, response) = await InvokeAsync(http, "single", form);
        response.Dispose();

        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("exactly one input file", JsonDocument.Parse(body).RootElement.GetProperty("detail").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_new_version_is_served_by_new_containers_and_the_old_version_s_are_removed()
    {
        using var http = fixture.Client();
        await DeployAsync(http, $"name: moving\nimage: {ForkImage}\ncommand: [\"sh\", \"-c\", \"echo $WHICH > /out/v.txt\"]\nenv: {{ WHICH: one }}\n");
        var (_, first, r1) = await InvokeAsync(http, "moving", new StringContent("x"));
        var oldContainer = (await GetJsonAsync(http, "/api/functions/moving/invocations"))[0].GetProperty("containerId").GetString()!;
        r1.Dispose();

        await DeployAsync(http, $"name: moving\nimage: {ForkImage}\ncommand: [\"sh\", \"-c\", \"echo $WHICH > /out/v.txt\"]\nenv: {{ WHICH: two }}\n");
        var (_, second, r2) = await InvokeAsync(http, "moving", new StringContent("x"));
        var version = r2.Headers.GetValues("Pipelines-Function-Version").Single();
        r2.Dispose();
        var newContainer = (await GetJsonAsync(http, "/api/functions/moving/invocations"))[0].GetProperty("containerId").GetString()!;

        Assert.Equal(("one", "two", "2"), (first.Trim(), second.Trim(), version));
        Assert.NotEqual(oldContainer, newContainer);
        using var docker = new Docker.DotNet.DockerClientBuilder().WithEndpoint(new Uri(Support.TestEnvironment.DockerEndpoint)).Build();
        await Assert.ThrowsAsync<Docker.DotNet.DockerContainerNotFoundException>(() => docker.Containers.InspectContainerAsync(oldContainer));
    }

    [Fact]
    public async Task An_output_up_to_64_KiB_held_in_memory_and_one_past_it_streamed_from_its_file_are_each_answered_byte_for_byte()
    {
        using var http = fixture.Client();
        await DeployAsync(http, $$"""
            name: echo-sizes
            image: {{ForkImage}}
            command: ["cp", "{input}", "/out/echo.bin"]
            output: echo.bin
            max_request_size: 1Mi
            max: 1
            """);

        // 64 KiB is the largest answer held in memory (FunctionInvoker.SmallFile); one byte more is copied to a file and streamed.
        var sizes = new[] { 12, 64 * 1024, 64 * 1024 + 1, 300_000 };
        var sent = sizes.Select(n => Enumerable.Range(0, n).Select(i => (byte)(i * 7 % 251)).ToArray()).ToList();
        foreach (var body in sent)
        {
            using var response = await http.PostAsync("/api/functions/echo-sizes/invoke", new ByteArrayContent(body));
            var answer = await response.Content.ReadAsByteArrayAsync();
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal(body, answer);
        }

        var rows = (await GetJsonAsync(http, "/api/functions/echo-sizes/invocations")).EnumerateArray().Reverse().ToList();
        Assert.Equal(sizes.Length, rows.Count);
        for (var i = 0; i < sizes.Length; i++)
        {
            Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(sent[i])), rows[i].GetProperty("outputSha256").GetString());
            Assert.Equal(sizes[i], rows[i].GetProperty("outputBytes").GetInt64());
        }
    }

    [Fact]
    public async Task An_http_function_loads_its_model_once_and_serves_the_request_body()
    {
        using var http = fixture.Client();
        await DeployAsync(http, $"name: translate\nimage: {HttpImage}\nmode: http\nconcurrency: 4\nmax: 1\n");

        var bodies = await Task.WhenAll(Enumerable.Range(0, 6).Select(async _ =>
        {
            var (status, body, response) = await InvokeAsync(http, "translate", new StringContent("hello world", Encoding.UTF8, "text/plain"));
            response.Dispose();
            Assert.Equal(HttpStatusCode.OK, status);
            return body;
        }));

        Assert.All(bodies, b => Assert.Equal("bonjour monde", b.Trim()));
        var rows = (await GetJsonAsync(http, "/api/functions/translate/invocations")).EnumerateArray().ToList();
        Assert.Equal(6, rows.Count);
        Assert.Single(rows.Select(r => r.GetProperty("containerId").GetString()).Distinct());
    }

    [Fact]
    public async Task A_crashing_command_answers_502_with_the_tail_of_what_it_wrote()
    {
        using var http = fixture.Client();
        await DeployAsync(http, $"name: crash\nimage: {ForkImage}\ncommand: [\"sh\", \"-c\", \"echo reading the input; echo the model is corrupt >&2; exit 3\"]\n");

        var (status, body, response) = await InvokeAsync(http, "crash", new StringContent("x"));
        response.Dispose();
        var problem = JsonDocument.Parse(body).RootElement;

        Assert.Equal(HttpStatusCode.BadGateway, status);
        Assert.Contains("exited with code 3", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Contains("the model is corrupt", problem.GetProperty("stderr").GetString(), StringComparison.Ordinal);
        var recorded = await GetJsonAsync(http, "/api/functions/crash/invocations/" + problem.GetProperty("invocation").GetString());
        Assert.Equal(("failed", 502), (recorded.GetProperty("status").GetString(), recorded.GetProperty("httpStatus").GetInt32()));
        Assert.Contains("the model is corrupt", recorded.GetProperty("error").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_command_that_hangs_past_its_timeout_answers_504_and_the_next_request_is_served()
    {
        using var http = fixture.Client();
        await DeployAsync(http, $"name: hang\nimage: {ForkImage}\ncommand: [\"sh\", \"-c\", \"if grep -q hang /in/input; then sleep 60; fi; cp /in/input /out/echo.txt\"]\nresources: {{ timeout: 1s }}\nmax: 1\n");

        var clock = Stopwatch.StartNew();
        var (status, body, response) = await InvokeAsync(http, "hang", new StringContent("hang"));
        response.Dispose();
        var took = clock.Elapsed;
        var (after, echoed, second) = await InvokeAsync(http, "hang", new StringContent("fine"));
        second.Dispose();

        Assert.Equal(HttpStatusCode.GatewayTimeout, status);
        Assert.Contains("timeout of 1.0s", JsonDocument.Parse(body).RootElement.GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.True(took < TimeSpan.FromSeconds(20), $"the timed-out request took {took}");
        Assert.Equal((HttpStatusCode.OK, "fine"), (after, echoed));
    }

    [Fact]
    public async Task Requests_beyond_max_and_queue_are_refused_with_429()
    {
        using var http = fixture.Client();
        await DeployAsync(http, $"name: busy\nimage: {ForkImage}\ncommand: [\"sh\", \"-c\", \"sleep 2; echo done > /out/r.txt\"]\nmax: 1\nqueue: 1\n");

        var results = await Task.WhenAll(Enumerable.Range(0, 4).Select(async _ =>
        {
            var (status, body, response) = await InvokeAsync(http, "busy", new StringContent("x"));
            var retryAfter = response.Headers.RetryAfter;
            response.Dispose();
            return (status, body, retryAfter);
        }));

        Assert.Contains(results, r => r.status == HttpStatusCode.OK);
        var refused = results.Where(r => r.status == HttpStatusCode.TooManyRequests).ToList();
        Assert.NotEmpty(refused);
        Assert.All(refused, r => Assert.Contains("already wait for a warm container", JsonDocument.Parse(r.body).RootElement.GetProperty("detail").GetString(), StringComparison.Ordinal));
        Assert.All(refused, r => Assert.NotNull(r.retryAfter));
        Assert.Equal(4, results.Count(r => r.status is HttpStatusCode.OK or HttpStatusCode.TooManyRequests));
    }

    [Fact]
    public async Task A_read_key_may_not_invoke_and_no_key_is_unauthorized()
    {
        using var http = fixture.Client();
        await DeployAsync(http, $"name: guarded\nimage: {ForkImage}\ncommand: [\"wordcount\"]\n");
        using var reader = fixture.Server.Client(ServerFixture.ReadKey);
        using var anonymous = fixture.Server.Client();

        using var read = await reader.PostAsync("/api/functions/guarded/invoke", new StringContent("x"));
        using var none = await anonymous.PostAsync("/api/functions/guarded/invoke", new StringContent("x"));
        using var looked = await reader.GetAsync("/api/functions/guarded");

        Assert.Equal(HttpStatusCode.Forbidden, read.StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, none.StatusCode);
        Assert.Equal(HttpStatusCode.OK, looked.StatusCode);
        Assert.Empty((await GetJsonAsync(http, "/api/functions/guarded/invocations")).EnumerateArray());
    }

    [Fact]
    public async Task An_async_invocation_is_run_by_a_separate_worker_and_its_output_fetched_later()
    {
        using var http = fixture.Client();
        await DeployAsync(http, $"name: later\nimage: {ForkImage}\ncommand: [\"wordcount\"]\n");
        await fixture.StartWorkerAsync();

        var (status, body, response) = await InvokeAsync(http, "later", new StringContent("one two three"), "?async=true&filename=text.txt");
        var location = response.Headers.Location?.OriginalString;
        response.Dispose();
        Assert.Equal(HttpStatusCode.Accepted, status);
        Assert.Equal("queued", JsonDocument.Parse(body).RootElement.GetProperty("status").GetString());
        Assert.NotNull(location);

        var clock = Stopwatch.StartNew();
        JsonElement done;
        while (true)
        {
            done = await GetJsonAsync(http, location);
            if (done.GetProperty("status").GetString() is not ("queued" or "running"))
            {
                break;
            }

            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(90), $"still {done}");
            await Task.Delay(250);
        }

        Assert.Equal("succeeded", done.GetProperty("status").GetString());
        using var output = await http.GetAsync(done.GetProperty("outputUrl").GetString());
        Assert.Equal(HttpStatusCode.OK, output.StatusCode);
        Assert.Equal("file\tlines\twords\tbytes\ntext.txt\t0\t3\t13\n", await output.Content.ReadAsStringAsync());

        // The server has no worker role: only the separate worker process can have run it.
        Assert.DoesNotContain("function later@1 invocation", fixture.Server.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_dashboard_counts_requests_and_errors_and_shows_warm_containers()
    {
        using var http = fixture.Client();
        await DeployAsync(http, $"name: counted\nimage: {ForkImage}\ncommand: [\"sh\", \"-c\", \"grep -q ok /in/input && echo yes > /out/r.txt\"]\nmin_warm: 1\n");
        foreach (var text in new[] { "ok", "ok", "no" })
        {
            var (_, _, response) = await InvokeAsync(http, "counted", new StringContent(text));
            response.Dispose();
        }

        using var page = await http.GetAsync("/hangfire/functions");
        var html = await page.Content.ReadAsStringAsync();
        var row = html[html.IndexOf("data-function=\"counted\"", StringComparison.Ordinal)..];
        row = row[..row.IndexOf("</tr>", StringComparison.Ordinal)];

        Assert.Contains("<td class=\"requests\">3</td>", row, StringComparison.Ordinal);
        Assert.Contains(">1</span></td>", row, StringComparison.Ordinal);
        Assert.Matches("<td class=\"p50\">[0-9.]+ ms</td>", row);
        Assert.Matches("<td class=\"warm\">[1-9]", row);
        var detail = await GetJsonAsync(http, "/api/functions/counted");
        Assert.Equal(3, detail.GetProperty("stats")[0].GetProperty("requests").GetInt64());
        Assert.True(detail.GetProperty("warm")[0].GetProperty("warm").GetInt32() >= 1);
    }
}
