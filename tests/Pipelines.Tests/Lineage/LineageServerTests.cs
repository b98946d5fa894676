using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Pipelines.Tests.Server;

namespace Pipelines.Tests.Lineage;

/// <summary>GET /api/lineage and the dashboard's report link and timeline, against a real `pipelines server` (PostgreSQL, Swift, Docker).</summary>
[Collection(ServerCollection.Name)]
[Integration]
public sealed class LineageServerTests(ServerFixture fixture)
{
    [Fact]
    public async Task The_API_names_a_results_rows_task_and_input_and_the_run_page_links_the_report_and_draws_the_timeline()
    {
        using var http = fixture.Server.Client();
        var runId = await ServerFixture.SubmitAsync(http, fixture.StatsWorkflowInto("lineage"));
        await ServerFixture.WaitForAsync(http, runId, r => r.GetProperty("state").GetString() == "succeeded", TimeSpan.FromMinutes(2));
        var folder = $"s3://{fixture.Bucket}/lineage/{runId}/";

        var answer = await LineageAsync(http, $"/api/lineage?uri={Uri.EscapeDataString(folder + "results/stats.parquet")}&key=lane2/S070_R2.fastq");
        var row = answer.GetProperty("row");
        Assert.Equal("lane2/S070_R2.fastq", row.GetProperty("source_file").GetProperty("key").GetString());
        var step = answer.GetProperty("steps")[0];
        Assert.Equal(row.GetProperty("task_id").GetString(), step.GetProperty("task_id").GetString());
        Assert.Contains("/in/lane2/S070_R2.fastq", step.GetProperty("command").EnumerateArray().Select(c => c.GetString()));
        Assert.Equal("run folder", answer.GetProperty("run").GetProperty("source").GetString());

        using var noRow = await http.GetAsync($"/api/lineage?uri={Uri.EscapeDataString(folder + "results/stats.parquet")}&row=999");
        Assert.Equal(HttpStatusCode.BadRequest, noRow.StatusCode);
        Assert.Contains("has 200 rows; there is no row 999", await noRow.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        using var host = await http.GetAsync($"/api/lineage?uri={Uri.EscapeDataString("/etc/tasks/passwd")}");
        Assert.Equal(HttpStatusCode.NotFound, host.StatusCode);

        var page = await http.GetStringAsync($"/hangfire/runs/{runId}");
        Assert.Contains($"id=\"run-report\" href=\"/api/runs/{runId}/files/report.html\"", page, StringComparison.Ordinal);
        Assert.Contains("<svg id=\"timeline\"", page, StringComparison.Ordinal);
        Assert.Equal(10, CountOf(page[page.IndexOf("<svg id=\"timeline\"", StringComparison.Ordinal)..], "<rect class=\"bar "));

        using var report = await http.GetAsync($"/api/runs/{runId}/files/report.html");
        Assert.Equal(HttpStatusCode.OK, report.StatusCode);
        Assert.Equal("text/html", report.Content.Headers.ContentType?.MediaType);
        Assert.StartsWith("default-src 'none'", string.Join(";", report.Headers.GetValues("Content-Security-Policy")), StringComparison.Ordinal);
        Assert.Contains("<svg id=\"timeline\"", await report.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_run_still_going_answers_from_the_run_store_for_a_task_that_has_ended()
    {
        // Two tasks: one ends at once, the other sleeps, so the run is still going when it is asked.
        var yaml = $$"""
            version: 1
            name: half-done
            input:
              uri: s3://{{fixture.Bucket}}/raw/
              include: ["lane1/S001_R1.fastq", "lane1/S002_R1.fastq"]
            steps:
              - name: work
                image: pipelines-samples/pair-check:1
                command: ["sh", "-c", "if [ \"$1\" = /in/lane1/S001_R1.fastq ]; then busybox sleep 120; fi; busybox wc -c \"$1\" > /out/n.tsv", "sh", "{input}"]
                resources: { cpus: 0.1, memory: 32Mi, timeout: 5m }
                outputs: ["*.tsv"]
            output:
              uri: s3://{{fixture.Bucket}}/half/
            """;
        using var http = fixture.Server.Client();
        var runId = await ServerFixture.SubmitAsync(http, yaml);
        try
        {
            await ServerFixture.WaitForAsync(http, runId, r => r.GetProperty("counts").GetProperty("succeeded").GetInt32() == 1, TimeSpan.FromMinutes(1));
            var done = (await http.GetFromJsonAsync<JsonElement>($"/api/runs/{runId}/tasks?state=succeeded")).GetProperty("items")[0];
            var taskId = done.GetProperty("taskId").GetString()!;

            var answer = await LineageAsync(http, $"/api/lineage?uri={Uri.EscapeDataString($"s3://{fixture.Bucket}/half/{runId}/tasks/{taskId}/work/n.tsv")}");

            Assert.Equal("run store", answer.GetProperty("run").GetProperty("source").GetString());
            Assert.Equal("running", answer.GetProperty("run").GetProperty("status").GetString());
            var step = answer.GetProperty("steps")[0];
            Assert.Equal(taskId, step.GetProperty("task_id").GetString());
            Assert.Equal("lane1/S002_R1.fastq", Assert.Single(step.GetProperty("inputs").EnumerateArray()).GetProperty("key").GetString());
            var page = await http.GetStringAsync($"/hangfire/runs/{runId}");
            Assert.Contains("<svg id=\"timeline\"", page, StringComparison.Ordinal);
        }
        finally
        {
            using var cancel = await http.PostAsync($"/api/runs/{runId}/cancel", null);
            await ServerFixture.WaitForAsync(http, runId, r => r.GetProperty("state").GetString() == "cancelled", TimeSpan.FromSeconds(60));
        }
    }

    private static async Task<JsonElement> LineageAsync(HttpClient http, string url)
    {
        using var response = await http.GetAsync(url);
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"{(int)response.StatusCode}: {body}");
        return JsonDocument.Parse(body).RootElement;
    }

    private static int CountOf(string text, string what)
    {
        var n = 0;
        for (var i = text.IndexOf(what, StringComparison.Ordinal); i >= 0; i = text.IndexOf(what, i + 1, StringComparison.Ordinal))
        {
            n++;
        }

        return n;
    }
}
