using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Npgsql;
using Pipelines.Hosting;
using Pipelines.RunStore;
using Pipelines.Tests.Support;

namespace Pipelines.Tests.Server;

/// <summary>
/// Workflows with triggers over the REST API, and S3 event notifications posted to the server:
/// the same ledger as the watcher, so an object version starts one task however it is reported.
/// </summary>
[Collection(ServerCollection.Name)]
[Integration]
public sealed class ServerTriggersApiTests(ServerFixture fixture)
{
    [Fact]
    public async Task A_workflow_registered_over_the_API_runs_the_objects_that_events_report_once()
    {
        using var http = fixture.Server.Client();
        var bucket = fixture.Bucket;
        var yaml = File.ReadAllText(Path.Combine(TestEnvironment.RepoRoot, "workflows", "fastq-stats-triggered.yaml"));
        var set = new[]
        {
            $"input.uri=s3://{bucket}/incoming/", $"trigger.uri=s3://{bucket}/incoming/",
            $"output.uri=s3://{bucket}/triggered/", "trigger.settle=1s",
        };

        using (var bad = await http.PostAsJsonAsync("/api/workflows", new { workflow = "version: 1\nname: x\n", set = Array.Empty<string>() }))
        {
            Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        }

        using (var registered = await http.PostAsJsonAsync("/api/workflows", new { workflow = yaml, set }))
        {
            Assert.Equal(HttpStatusCode.Created, registered.StatusCode);
            Assert.Equal("/api/workflows/fastq-stats-triggered", registered.Headers.Location?.OriginalString);
        }

        var incoming = fixture.Stores.Open($"s3://{bucket}/incoming/");
        var file = Path.Combine(TestEnvironment.SampleFastq, "lane1", "S001_R1.fastq");
        var digest = await incoming.Store.UploadAsync(incoming.Key("drop/S001_R1.fastq"), file, CancellationToken.None);
        var body = JsonSerializer.Serialize(new
        {
            Records = new[]
            {
                new
                {
                    eventVersion = "2.1",
                    eventSource = "aws:s3",
                    eventName = "ObjectCreated:Put",
                    s3 = new { bucket = new { name = bucket }, @object = new { key = "incoming/drop/S001_R1.fastq", size = digest.Size, eTag = digest.Md5 } },
                },
            },
        });

        var first = await PostEventAsync(http, body);
        var second = await PostEventAsync(http, body);
        Assert.Equal(HttpStatusCode.OK, first.Status);
        Assert.Equal(HttpStatusCode.OK, second.Status);
        Assert.Equal(1, first.Json.GetProperty("accepted").GetInt32() + first.Json.GetProperty("duplicates").GetInt32());
        Assert.Equal(1, second.Json.GetProperty("duplicates").GetInt32());
        var malformed = await PostEventAsync(http, "{\"Records\": 7");
        Assert.Equal(HttpStatusCode.BadRequest, malformed.Status);

        var list = await http.GetFromJsonAsync<JsonElement>("/api/workflows");
        Assert.Contains(list.EnumerateArray(), w => w.GetProperty("name").GetString() == "fastq-stats-triggered");

        // Settle, then one run over the one new object, gathered.
        JsonElement run = default;
        var deadline = DateTime.UtcNow.AddMinutes(2);
        while (DateTime.UtcNow < deadline)
        {
            var runs = await http.GetFromJsonAsync<JsonElement>("/api/runs?workflow=fastq-stats-triggered");
            var items = runs.GetProperty("items").EnumerateArray().ToList();
            if (items.Count > 0 && items[0].GetProperty("state").GetString() is "succeeded" or "failed")
            {
                Assert.Single(items);
                run = items[0];
                break;
            }

            await Task.Delay(500);
        }

        Assert.Equal("succeeded", run.GetProperty("state").GetString());
        Assert.Equal(1, run.GetProperty("counts").GetProperty("total").GetInt32());
        var tasks = await http.GetFromJsonAsync<JsonElement>($"/api/runs/{run.GetProperty("runId").GetString()}/tasks");
        var inputs = tasks.GetProperty("items")[0].GetProperty("inputs").EnumerateArray().ToList();
        Assert.Equal("drop/S001_R1.fastq", Assert.Single(inputs).GetProperty("key").GetString());

        using (var deleted = await http.DeleteAsync("/api/workflows/fastq-stats-triggered"))
        {
            Assert.Equal(HttpStatusCode.NoContent, deleted.StatusCode);
        }

        using var again = await http.DeleteAsync("/api/workflows/fastq-stats-triggered");
        Assert.Equal(HttpStatusCode.NotFound, again.StatusCode);
    }

    /// <summary>
    /// Requests never set up the schema: they all answer while another session holds the lock that
    /// the set-up takes (before, GET /api/workflows and registration took it on every call), and a
    /// set-up started meanwhile is still waiting for it when they have answered.
    /// </summary>
    [Fact]
    public async Task Requests_answer_while_the_schema_lock_is_held_and_run_no_schema_set_up()
    {
        using var http = fixture.Server.Client();
        var bucket = fixture.Bucket;
        var yaml = $"""
            version: 1
            name: schema-probe
            input: {"{"} uri: "s3://{bucket}/probe/" {"}"}
            steps: [{"{"} name: s, image: "pipelines-samples/fastq-stats:1", command: [x] {"}"}]
            output: {"{"} uri: "s3://{bucket}/probe-out/" {"}"}
            trigger: {"{"} uri: "s3://{bucket}/probe/", include: ["**/*.fastq"], settle: 30s {"}"}
            """;
        await using var db = NpgsqlDataSource.Create(TestEnvironment.Postgres);
        await using var holder = await db.OpenConnectionAsync();
        await using (var take = new NpgsqlCommand($"SELECT pg_advisory_lock({PostgresSchema.Lock})", holder))
        {
            await take.ExecuteNonQueryAsync();
        }

        Task setUp;
        try
        {
            setUp = new PostgresSchema(db, fixture.Env["PIPELINES_Schema"]!).CreateAsync(CancellationToken.None);
            using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            foreach (var path in new[] { "/api/workflows", "/api/runs", "/api/runs/20261201-000000-000000", "/hangfire/runs", "/readyz" })
            {
                using var get = await http.GetAsync(path, deadline.Token);
                Assert.True(get.StatusCode is HttpStatusCode.OK or HttpStatusCode.NotFound, $"GET {path}: {(int)get.StatusCode}");
            }

            using (var registered = await http.PostAsJsonAsync("/api/workflows", new { workflow = yaml, set = Array.Empty<string>() }, deadline.Token))
            {
                Assert.Equal(HttpStatusCode.Created, registered.StatusCode);
            }

            using (var removed = await http.DeleteAsync("/api/workflows/schema-probe", deadline.Token))
            {
                Assert.Equal(HttpStatusCode.NoContent, removed.StatusCode);
            }

            Assert.False(setUp.IsCompleted, "the set-up did not wait for the lock: the test would not see a request that took it");
        }
        finally
        {
            await using var release = new NpgsqlCommand($"SELECT pg_advisory_unlock({PostgresSchema.Lock})", holder);
            await release.ExecuteNonQueryAsync();
        }

        await setUp;
    }

    private static async Task<(HttpStatusCode Status, JsonElement Json)> PostEventAsync(HttpClient http, string body)
    {
        using var content = new StringContent(body, Encoding.UTF8, "application/json");
        using var response = await http.PostAsync("/api/triggers/events", content);
        var text = await response.Content.ReadAsStringAsync();
        return (response.StatusCode, JsonDocument.Parse(text).RootElement.Clone());
    }
}
