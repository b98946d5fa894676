using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Pipelines.Tests.EndToEnd;
using Pipelines.Tests.Support;

namespace Pipelines.Tests.Server;

/// <summary>
/// The batch canary through the REST API with the server/worker split: a `pipelines server`
/// with the api role only, a `pipelines worker` process running every task and both gathers,
/// PostgreSQL for the runs and the queue, Swift (S3) for the input and the outputs.
/// </summary>
[Collection(ServerCollection.Name)]
[Integration]
public sealed class BatchCanaryServerTests(BatchCanaryImages images, SplitServerFixture fixture) : IClassFixture<BatchCanaryImages>, IClassFixture<SplitServerFixture>, IAsyncLifetime
{
    private readonly string _prefix = TestEnvironment.NewName("canary-");

    public async Task InitializeAsync()
    {
        var input = fixture.Stores.Open($"s3://{fixture.Bucket}/{_prefix}/raw/");
        foreach (var (key, lines) in BatchCanaryImages.Inputs)
        {
            await input.Store.PutAsync(input.Key(key), Encoding.UTF8.GetBytes(BatchCanaryImages.Content(lines)), "text/plain", CancellationToken.None);
        }
    }

    public Task DisposeAsync() => Task.CompletedTask;

    [Fact]
    public async Task A_canary_submitted_over_the_API_runs_on_a_worker_and_its_diff_is_served()
    {
        using var http = fixture.Server.Client();
        using var submit = await http.PostAsJsonAsync("/api/runs", new { workflow = Workflow(), candidate = "score=" + images.Planted, sample = "100%" });
        var submitted = JsonDocument.Parse(await submit.Content.ReadAsStringAsync()).RootElement;
        Assert.True(submit.StatusCode == HttpStatusCode.Accepted, submitted.ToString());
        var runId = submitted.GetProperty("runId").GetString()!;
        Assert.Equal(runId + "-canary", submitted.GetProperty("canaryRunId").GetString());
        Assert.Equal($"/api/runs/{runId}/canary", submitted.GetProperty("canaryUrl").GetString());

        // 409 while either side goes on, then the diff: never anything else.
        var clock = Stopwatch.StartNew();
        JsonElement diff;
        while (true)
        {
            using var answer = await http.GetAsync($"/api/runs/{runId}/canary");
            var body = await answer.Content.ReadAsStringAsync();
            if (answer.StatusCode == HttpStatusCode.OK)
            {
                diff = JsonDocument.Parse(body).RootElement;
                break;
            }

            Assert.True(answer.StatusCode == HttpStatusCode.Conflict, $"{(int)answer.StatusCode}: {body}\n{fixture.Server.Output}");
            Assert.True(clock.Elapsed < TimeSpan.FromMinutes(4), "no diff within 4 minutes: " + body);
            await Task.Delay(500);
        }

        Assert.Equal("different", diff.GetProperty("verdict").GetString());
        var cell = Assert.Single(diff.GetProperty("tables")[0].GetProperty("cells").EnumerateArray());
        Assert.Equal((BatchCanaryImages.PlantedFile, "score"), (cell.GetProperty("source_file").GetString(), cell.GetProperty("column").GetString()));
        var run = await ServerFixture.GetRunAsync(http, runId);
        Assert.Equal("succeeded", run.GetProperty("state").GetString());
        var candidate = await ServerFixture.GetRunAsync(http, runId + "-canary");
        Assert.Equal("succeeded", candidate.GetProperty("state").GetString());
        Assert.Equal($"s3://{fixture.Bucket}/{_prefix}/out/{runId}/canary/", candidate.GetProperty("outputUri").GetString());
        var summary = await http.GetStringAsync($"/api/runs/{runId}/files/canary/summary.txt");
        Assert.Contains("1 cell(s) differ", summary, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_CLI_runs_a_canary_through_the_server_and_a_bad_one_is_refused()
    {
        var workflow = fixture.Temp.Write(_prefix + ".yaml", Workflow());
        var result = await CliRunner.RunAsync(["run", workflow, "--server", fixture.Server.Url, "--candidate", "score=" + images.Retagged, "--sample", "1"], fixture.Env);

        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Contains("canary of step score: equal", result.Stdout, StringComparison.Ordinal);
        Assert.Contains("sample:    1 of 3 task(s) (1)", result.Stdout, StringComparison.Ordinal);

        using var http = fixture.Server.Client();
        using var bad = await http.PostAsJsonAsync("/api/runs", new { workflow = Workflow(), candidate = "nosuch=" + images.Planted });
        Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        Assert.Contains("names step 'nosuch', which is not a step of workflow canary-test", await bad.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        var refused = await CliRunner.RunAsync(["run", workflow, "--server", fixture.Server.Url, "--candidate", "score=" + images.Planted, "--sample", "150%"], fixture.Env);
        Assert.True(refused.ExitCode == 2, refused.ToString());
        using var noCanary = await http.GetAsync("/api/runs/20000101-000000-000000/canary");
        Assert.Equal(HttpStatusCode.NotFound, noCanary.StatusCode);
    }

    private string Workflow() => BatchCanaryImages.Workflow(images.Current, $"s3://{fixture.Bucket}/{_prefix}/raw/", $"s3://{fixture.Bucket}/{_prefix}/out/");
}
