using System.Net;
using System.Text.Json;
using Pipelines.Tests.Support;

namespace Pipelines.Tests.Server;

/// <summary>The usage ledger through the server: a tenant reads its own records, and they add up to its run's usage.</summary>
public sealed partial class TenantIsolationTests
{
    [Fact]
    public async Task A_tenants_usage_of_its_run_adds_up_to_the_runs_usage_and_another_tenant_sees_none_of_it()
    {
        using var b = fixture.As(TenantServerFixture.LabBFull);
        using var runJson = JsonDocument.Parse(await b.GetStringAsync($"/api/runs/{fixture.LabBRun}/files/run.json"));
        var expected = runJson.RootElement.GetProperty("usage");

        using var own = JsonDocument.Parse(await b.GetStringAsync($"/api/usage?run={fixture.LabBRun}&from=30d"));
        var total = Assert.Single(own.RootElement.GetProperty("totals").EnumerateArray());
        Assert.Equal(expected.GetProperty("deliveries").GetInt64(), total.GetProperty("records").GetInt64());
        Assert.Equal(expected.GetProperty("cpu_seconds").GetDouble(), total.GetProperty("cpuSeconds").GetDouble(), 3);
        Assert.Equal(expected.GetProperty("bytes_in").GetInt64(), total.GetProperty("bytesIn").GetInt64());
        Assert.All(own.RootElement.GetProperty("rows").EnumerateArray(), r => Assert.Equal("lab-b", r.GetProperty("tenant").GetString()));

        using var a = fixture.As(TenantServerFixture.LabAFull);
        using var foreign = JsonDocument.Parse(await a.GetStringAsync($"/api/usage?run={fixture.LabBRun}&from=30d"));
        Assert.Empty(foreign.RootElement.GetProperty("rows").EnumerateArray());
        var records = await a.GetStringAsync("/api/usage/records?from=30d&format=csv");
        Assert.StartsWith("id,tenant,kind,run_id,", records, StringComparison.Ordinal);
        Assert.DoesNotContain(fixture.LabBRun, records, StringComparison.Ordinal);
        Assert.DoesNotContain(",lab-b,", records, StringComparison.Ordinal);

        using var admin = fixture.As(TenantServerFixture.Admin);
        var all = await admin.GetStringAsync("/api/usage/records?from=30d&format=json");
        Assert.Contains(fixture.LabBRun, all, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("by=week", "by 'week' is not day or hour")]
    [InlineData("from=yesterday", "from 'yesterday' is neither a duration back from now")]
    public async Task A_usage_query_that_cannot_be_read_is_refused_naming_the_parameter(string query, string detail)
    {
        using var b = fixture.As(TenantServerFixture.LabBFull);
        using var response = await b.GetAsync("/api/usage?" + query);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains(detail, await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Pipelines_usage_prints_the_tenants_sums_and_exports_its_records()
    {
        var json = await CliRunner.RunAsync(["usage", "--json", "--run", fixture.LabBRun, "--server", fixture.Server.Url, "--key", TenantServerFixture.LabBFull], fixture.Env);
        Assert.True(json.ExitCode == 0, json.ToString());
        using var document = JsonDocument.Parse(json.Stdout);
        Assert.Equal("pipelines.usage/1", document.RootElement.GetProperty("schema").GetString());
        Assert.NotEmpty(document.RootElement.GetProperty("rows").EnumerateArray());

        var table = await CliRunner.RunAsync(["usage", "--server", fixture.Server.Url, "--key", TenantServerFixture.LabBFull], fixture.Env);
        Assert.True(table.ExitCode == 0, table.ToString());
        Assert.Contains("lab-b", table.Stdout, StringComparison.Ordinal);
        Assert.Contains("total: ", table.Stdout, StringComparison.Ordinal);

        using var temp = new TempFolder();
        var file = temp.Combine("usage.csv");
        var export = await CliRunner.RunAsync(["usage", "--csv", file, "--server", fixture.Server.Url, "--key", TenantServerFixture.LabBFull], fixture.Env);
        Assert.True(export.ExitCode == 0, export.ToString());
        var lines = await File.ReadAllLinesAsync(file);
        Assert.Equal("id,tenant,kind,run_id,task_index,delivery,function,version,route,worker,started_at,ended_at,wall_seconds,cpu_seconds,peak_memory_bytes,reserved_memory_bytes,gb_seconds,bytes_in,bytes_out,harvested,outcome,reason", lines[0]);
        Assert.Contains(lines, l => l.Contains(fixture.LabBRun, StringComparison.Ordinal));
    }
}
