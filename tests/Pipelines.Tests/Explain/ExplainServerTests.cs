using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Pipelines.Tests.EndToEnd;
using Pipelines.Tests.Server;
using Pipelines.Tests.Support;

namespace Pipelines.Tests.Explain;

/// <summary>
/// Explain over the REST API and through `pipelines explain --server`, against a real
/// `pipelines server` with PostgreSQL, Swift and Docker: the reasons come from the run store.
/// </summary>
[Collection(ServerCollection.Name)]
[Integration]
public sealed class ExplainServerTests(ServerFixture fixture)
{
    [Fact]
    public async Task The_API_and_the_CLI_explain_a_run_whose_env_changed_and_a_task_taken_from_the_cache()
    {
        using var http = fixture.Server.Client();
        var output = $"s3://{fixture.Bucket}/explain/";
        var first = await SubmitAsync(http, output);
        var second = await SubmitAsync(http, output, "steps[0].env.LC_ALL=POSIX");
        var third = await SubmitAsync(http, output, "steps[0].env.LC_ALL=POSIX");

        var sum = await http.GetFromJsonAsync<JsonElement>($"/api/runs/{second}/explain");
        Assert.Equal((4, 0, 4), (sum.GetProperty("tasks").GetInt32(), sum.GetProperty("cached").GetInt32(), sum.GetProperty("ran").GetInt32()));
        var reason = sum.GetProperty("reasons").EnumerateArray().Single();
        Assert.Equal(("steps[0].env.LC_ALL", 4), (reason.GetProperty("reason").GetString(), reason.GetProperty("count").GetInt32()));

        var task = await http.GetFromJsonAsync<JsonElement>($"/api/runs/{second}/tasks/3/explain");
        var why = task.GetProperty("ran_because");
        Assert.Equal(("changed", first), (why.GetProperty("reason").GetString(), why.GetProperty("earlier_run").GetString()));
        var change = why.GetProperty("changes").EnumerateArray().Single();
        Assert.Equal(("C", "POSIX"), (change.GetProperty("before").GetString(), change.GetProperty("now").GetString()));

        var byId = await http.GetFromJsonAsync<JsonElement>($"/api/runs/{third}/tasks/{task.GetProperty("task_id").GetString()}/explain");
        Assert.Equal((3, second), (byId.GetProperty("task_index").GetInt32(), byId.GetProperty("cached_from").GetString()));

        using var noTask = await http.GetAsync($"/api/runs/{second}/tasks/9/explain");
        Assert.Equal(HttpStatusCode.NotFound, noTask.StatusCode);
        using var noRun = await http.GetAsync("/api/runs/20000101-000000-000000/explain");
        Assert.Equal(HttpStatusCode.NotFound, noRun.StatusCode);

        var env = new Dictionary<string, string?> { ["PIPELINES_HOME"] = fixture.Temp.Combine("explain-home") };
        var cli = await CliRunner.RunAsync(["explain", second, "--server", fixture.Server.Url], env);
        Assert.True(cli.ExitCode == 0, cli.ToString());
        Assert.Contains($"run {second}: 4 task(s): 0 cached, 4 ran", cli.Stdout, StringComparison.Ordinal);
        Assert.Contains("4 ran because of steps[0].env.LC_ALL", cli.Stdout, StringComparison.Ordinal);
        var cliTask = await CliRunner.RunAsync(["explain", second, "0", "--server", fixture.Server.Url], env);
        Assert.Contains("steps[0].env.LC_ALL: 'C' → 'POSIX'", cliTask.Stdout, StringComparison.Ordinal);
        var cliMissing = await CliRunner.RunAsync(["explain", second, "9", "--server", fixture.Server.Url], env);
        Assert.Equal(4, cliMissing.ExitCode);
        Assert.Contains("has no task '9'", cliMissing.Stderr, StringComparison.Ordinal);
    }

    private async Task<string> SubmitAsync(HttpClient http, string output, params string[] sets)
    {
        using var submit = await http.PostAsJsonAsync("/api/runs", new { workflow = fixture.StatsWorkflow, set = sets.Concat(["output.uri=" + output, "input.batch=50", "steps[0].retries=0"]).ToArray() });
        var body = await submit.Content.ReadAsStringAsync();
        Assert.True(submit.StatusCode == HttpStatusCode.Accepted, body);
        var runId = JsonDocument.Parse(body).RootElement.GetProperty("runId").GetString()!;
        await ServerFixture.WaitForAsync(http, runId, r => r.GetProperty("state").GetString() == "succeeded", TimeSpan.FromMinutes(3));
        return runId;
    }
}
