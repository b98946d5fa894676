using System.Diagnostics;
using System.Net;
using System.Text;
using System.Text.Json;
using Docker.DotNet;
using Docker.DotNet.Models;
using Pipelines.Containers;
using Pipelines.Tests.Server;
using Pipelines.Tests.Support;

namespace Pipelines.Tests.Harvest;

/// <summary>
/// Function requests under harvesting, on a real `pipelines server` at when-idle and a real warm
/// container: a request passes admission while the owner is quiet; under a busy owner the
/// request in flight is suspended with its container in the freezer, a new request is refused
/// with 503 after Harvest:AdmissionHold, and the suspended one is vacated past VacateAfter with
/// a 503 that says so; once the owner is quiet again requests are served.
/// </summary>
[Collection("harvest")]
[Integration]
public sealed class FunctionHarvestTests(HarvestingServerFixture fixture) : IClassFixture<HarvestingServerFixture>, IDisposable
{
    private readonly OwnerBurner _owner = new(loops: 1, cgroup: fixture.OwnerCgroup);

    [Fact]
    public async Task A_busy_owner_suspends_a_function_request_refuses_new_ones_with_503_and_vacates_the_suspended_one()
    {
        using var http = fixture.Server.Client();
        using (var deploy = await http.PostAsync("/api/functions", new StringContent(
            """
            name: slow-echo
            image: pipelines-samples/pair-check:1
            command: ["sh", "-c", 'n=$(busybox cat "$1"); i=0; while [ $i -lt $n ]; do busybox usleep 100000; i=$((i+1)); done; echo "slept $n" > /out/answer.txt', "sh", "{input}"]
            output: answer.txt
            max: 1
            resources: { cpus: 0.5, memory: 32Mi, timeout: 5m }
            """,
            Encoding.UTF8,
            "application/yaml")))
        {
            Assert.True(deploy.IsSuccessStatusCode, await deploy.Content.ReadAsStringAsync());
        }

        // The owner is quiet: the warm container starts and answers.
        var (status, body, _) = await InvokeAsync(http, "1");
        Assert.True(status == HttpStatusCode.OK, body);
        Assert.Equal("slept 1\n", body);

        // A long request; then the owner gets busy and its container is frozen.
        var slow = InvokeAsync(http, "600");
        var containerId = await Eventually.WaitAsync(async () => await FunctionContainerAsync("slow-echo"), () => "the function's container");
        _owner.Start();
        await Eventually.WaitAsync(
            () => Task.FromResult(Freezer.Holds(Freezer.StateOf("pipelines", containerId)) ? true : (bool?)null),
            () => $"the request's container to be suspended ({Freezer.StateOf("pipelines", containerId)}; request {slow.Status})\n{fixture.Server.Output}");

        // A new request waits Harvest:AdmissionHold for room, then is refused: try again later.
        var clock = Stopwatch.StartNew();
        var (refused, refusal, refusedResponse) = await InvokeAsync(http, "1");
        Assert.True(refused == HttpStatusCode.ServiceUnavailable, $"{(int)refused}: {refusal}");
        Assert.Contains("this worker lends no capacity now", refusal, StringComparison.Ordinal);
        Assert.Equal("10", refusedResponse.Headers.RetryAfter?.ToString());
        Assert.True(clock.Elapsed >= TimeSpan.FromSeconds(3), $"refused after {clock.Elapsed.TotalSeconds:0.0} s, before Harvest:AdmissionHold (3 s)");

        // The suspended request is vacated: an HTTP request cannot move, so it ends and says so.
        var (vacated, vacatedBody, _) = await slow.WaitAsync(Eventually.Patience);
        Assert.True(vacated == HttpStatusCode.ServiceUnavailable, $"{(int)vacated}: {vacatedBody}");
        Assert.Contains("vacated: the machine's owner needed it back", vacatedBody, StringComparison.Ordinal);

        _owner.Stop();

        // Quiet again: served (once the harvester has seen the quiet; until then, 503s that say why).
        var served = await Eventually.WaitAsync(
            async () =>
            {
                var (s, b, _) = await InvokeAsync(http, "1");
                return s == HttpStatusCode.OK ? b : s == HttpStatusCode.ServiceUnavailable ? null : throw new InvalidOperationException($"{(int)s}: {b}");
            },
            () => "a request to be served again");
        Assert.Equal("slept 1\n", served);

        using var list = await http.GetAsync("/api/functions/slow-echo/invocations");
        var rows = JsonDocument.Parse(await list.Content.ReadAsStringAsync()).RootElement.EnumerateArray().ToList();
        Assert.Contains(rows, r => r.GetProperty("status").GetString() == "failed" && r.GetProperty("error").GetString()!.StartsWith("vacated:", StringComparison.Ordinal));
    }

    public void Dispose() => _owner.Dispose();

    private static async Task<(HttpStatusCode Status, string Body, HttpResponseMessage Response)> InvokeAsync(HttpClient http, string text)
    {
        var response = await http.PostAsync("/api/functions/slow-echo/invoke?filename=n.txt", new StringContent(text));
        return (response.StatusCode, await response.Content.ReadAsStringAsync(), response);
    }

    private static async Task<string?> FunctionContainerAsync(string name)
    {
        using var client = new DockerClientBuilder().WithEndpoint(new Uri(TestEnvironment.DockerEndpoint)).Build();
        var list = await client.Containers.ListContainersAsync(new ContainersListParameters
        {
            Filters = new Dictionary<string, IDictionary<string, bool>> { ["label"] = new Dictionary<string, bool> { ["org.pipelines.function=" + name] = true } },
        });
        return list.FirstOrDefault(c => c.State == "running")?.ID;
    }
}

/// <summary>A `pipelines server` (every role) harvesting when idle, whose owner is a cgroup of the test's own.</summary>
public sealed class HarvestingServerFixture : ServerFixture
{
    public string OwnerCgroup { get; } = $"pipelines-tests-owner-{Guid.NewGuid():N}"[..36];

    protected override IReadOnlyDictionary<string, string?> MoreEnv => new Dictionary<string, string?>
    {
        ["PIPELINES_Docker__WarmRoot"] = Path.Combine("/tmp", "fh-" + Guid.NewGuid().ToString("N")[..8]),
        ["PIPELINES_Functions__Output"] = $"s3://{Bucket}/functions/",
        ["PIPELINES_Harvest__Policy"] = "when-idle",
        ["PIPELINES_Harvest__OwnerCgroup"] = OwnerCgroup,
        ["PIPELINES_Harvest__StartBelow"] = "0.2",
        ["PIPELINES_Harvest__StartAfter"] = "00:00:00",
        ["PIPELINES_Harvest__SuspendAbove"] = "0.3",
        ["PIPELINES_Harvest__SuspendAfter"] = "00:00:01",
        ["PIPELINES_Harvest__ResumeAfter"] = "00:00:02",
        ["PIPELINES_Harvest__VacateAfter"] = "00:00:08",
        ["PIPELINES_Harvest__AdmissionHold"] = "00:00:03",
    };
}
