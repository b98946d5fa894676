using System.Globalization;
using System.Net;
using System.Text.Json;
using System.Text.RegularExpressions;
using System.Xml.Linq;
using Parquet;
using Pipelines.Tests.Support;

namespace Pipelines.Tests.Server;

/// <summary>
/// The usage ledger through the server: a tenant reads its own records, and they add up to its run's
/// usage; its exports, its Usage page and its run's page, API view and status show its own figures only.
/// </summary>
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

    [Fact]
    public async Task A_tenants_parquet_export_holds_the_records_its_csv_holds_and_none_of_another_tenants()
    {
        using var b = fixture.As(TenantServerFixture.LabBFull);
        var csv = CsvIds(await b.GetStringAsync("/api/usage/records?from=30d&format=csv"));
        using var response = await b.GetAsync("/api/usage/records?from=30d&format=parquet");
        Assert.Equal("application/vnd.apache.parquet", response.Content.Headers.ContentType?.MediaType);
        var (ids, tenants) = await ParquetAsync(await response.Content.ReadAsByteArrayAsync());

        Assert.Contains(csv, id => id.StartsWith(fixture.LabBRun + "/", StringComparison.Ordinal));
        Assert.Equal(csv, ids);
        Assert.All(tenants, t => Assert.Equal("lab-b", t));

        using var a = fixture.As(TenantServerFixture.LabAFull);
        var (aIds, aTenants) = await ParquetAsync(await a.GetByteArrayAsync("/api/usage/records?from=30d&format=parquet"));
        Assert.DoesNotContain(aIds, id => id.StartsWith(fixture.LabBRun, StringComparison.Ordinal) || ids.Contains(id));
        Assert.All(aTenants, t => Assert.Equal("lab-a", t));

        using var temp = new TempFolder();
        var file = temp.Combine("usage.parquet");
        var export = await CliRunner.RunAsync(["usage", "--parquet", file, "--server", fixture.Server.Url, "--key", TenantServerFixture.LabBFull], fixture.Env);
        Assert.True(export.ExitCode == 0, export.ToString());
        Assert.Equal(csv, (await ParquetAsync(await File.ReadAllBytesAsync(file))).Ids);

        var both = await CliRunner.RunAsync(["usage", "--parquet", file, "--csv", file + ".csv", "--server", fixture.Server.Url, "--key", TenantServerFixture.LabBFull], fixture.Env);
        Assert.NotEqual(0, both.ExitCode);
        Assert.Contains("--csv and --parquet: give one of them", both.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_usage_page_draws_a_bar_per_day_of_the_tenants_cpu_seconds_good_and_wasted_as_the_api_sums_them()
    {
        using var b = fixture.As(TenantServerFixture.LabBFull);
        using var api = JsonDocument.Parse(await b.GetStringAsync("/api/usage?from=30d"));
        var expected = api.RootElement.GetProperty("rows").EnumerateArray()
            .GroupBy(r => r.GetProperty("start").GetDateTimeOffset().UtcDateTime.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture))
            .ToDictionary(g => g.Key, g => (
                Good: g.Where(r => r.GetProperty("outcome").GetString() is not ("vacated" or "failed")).Sum(r => r.GetProperty("cpuSeconds").GetDouble()),
                Wasted: g.Where(r => r.GetProperty("outcome").GetString() is "vacated" or "failed").Sum(r => r.GetProperty("cpuSeconds").GetDouble())));
        Assert.NotEmpty(expected);
        Assert.Contains(expected.Values, v => v.Good > 0);

        var html = await b.GetStringAsync("/hangfire/usage?since=30d&measure=cpu");
        var days = DayBars(html);

        // 30 days back from now: today and the 30 days before it, one bar each, empty where nothing ended.
        Assert.Equal(31, days.Count);
        Assert.Equal(DateTime.UtcNow.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture), days.Keys.Max());
        foreach (var (day, bar) in days)
        {
            var (good, wasted) = expected.GetValueOrDefault(day);
            Assert.Equal(good, bar.Good, 6);
            Assert.Equal(wasted, bar.Wasted, 6);
        }

        Assert.Contains("<td>lab-b</td>", html, StringComparison.Ordinal);
        Assert.DoesNotContain("lab-a", html, StringComparison.Ordinal);
        Assert.Contains("/api/usage/records?from=", html, StringComparison.Ordinal);
        Assert.Contains("format=parquet", html, StringComparison.Ordinal);

        // The admin key: every tenant's by default, one tenant's with ?tenant=, drawn alike.
        using var admin = fixture.As(TenantServerFixture.Admin);
        var named = await admin.GetStringAsync("/hangfire/usage?since=30d&measure=cpu&tenant=lab-b");
        Assert.Equal(days, DayBars(named));
        Assert.Contains("<td>lab-b</td>", await admin.GetStringAsync("/hangfire/usage"), StringComparison.Ordinal);

        using var bad = await b.GetAsync("/hangfire/usage?since=yesterday");
        Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        Assert.Contains("since &#39;yesterday&#39;", await bad.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_runs_api_view_page_and_status_show_its_usage_and_cost_as_its_run_json_does()
    {
        using var b = fixture.As(TenantServerFixture.LabBFull);
        using var runJson = JsonDocument.Parse(await b.GetStringAsync($"/api/runs/{fixture.LabBRun}/files/run.json"));
        var expected = runJson.RootElement.GetProperty("usage");
        Assert.True(expected.GetProperty("deliveries").GetInt64() > 0);

        // The API's view sums the ledger now (as while the run goes on): the same block as run.json's.
        using var view = JsonDocument.Parse(await b.GetStringAsync($"/api/runs/{fixture.LabBRun}"));
        var usage = view.RootElement.GetProperty("usage");
        foreach (var field in new[] { "deliveries", "bytes_in", "bytes_out" })
        {
            Assert.Equal(expected.GetProperty(field).GetInt64(), usage.GetProperty(field).GetInt64());
        }

        foreach (var field in new[] { "cpu_seconds", "gb_seconds", "wall_seconds", "cost" })
        {
            Assert.Equal(expected.GetProperty(field).GetDouble(), usage.GetProperty(field).GetDouble(), 3);
        }

        // The run page's table is report.html's (one rule), row for row.
        var page = await b.GetStringAsync($"/hangfire/runs/{fixture.LabBRun}");
        var report = await b.GetStringAsync($"/api/runs/{fixture.LabBRun}/files/report.html");
        Assert.Equal(UsageRow(report, "usage-all"), UsageRow(page, "usage-all"));
        Assert.Equal(UsageRow(report, "usage-wasted"), UsageRow(page, "usage-wasted"));
        Assert.Contains($">{expected.GetProperty("deliveries").GetInt64()}<", UsageRow(page, "usage-all"), StringComparison.Ordinal);

        var status = await CliRunner.RunAsync(["status", fixture.LabBRun, "--server", fixture.Server.Url, "--key", TenantServerFixture.LabBFull], fixture.Env);
        Assert.True(status.ExitCode == 0, status.ToString());
        var cost = Assert.Single(status.Stdout.Split('\n'), l => l.StartsWith("  cost:    ", StringComparison.Ordinal));
        Assert.Contains($" {expected.GetProperty("currency").GetString()} for {expected.GetProperty("deliveries").GetInt64()} deliveries: ", cost, StringComparison.Ordinal);

        var json = await CliRunner.RunAsync(["status", fixture.LabBRun, "--json", "--server", fixture.Server.Url, "--key", TenantServerFixture.LabBFull], fixture.Env);
        Assert.True(json.ExitCode == 0, json.ToString());
        using var document = JsonDocument.Parse(json.Stdout);
        Assert.Equal(expected.GetProperty("cost").GetDouble(), document.RootElement.GetProperty("usage").GetProperty("cost").GetDouble());
        Assert.Equal(expected.GetProperty("deliveries").GetInt64(), document.RootElement.GetProperty("usage").GetProperty("deliveries").GetInt64());

        // The same line from PostgreSQL, as the operator reads it with --tenant.
        var store = await CliRunner.RunAsync(["status", fixture.LabBRun, "--tenant", "lab-b"], fixture.Env);
        Assert.True(store.ExitCode == 0, store.ToString());
        Assert.Contains(cost, store.Stdout, StringComparison.Ordinal);
    }

    private static List<string> CsvIds(string csv) =>
        [.. csv.Split('\n', StringSplitOptions.RemoveEmptyEntries).Skip(1).Select(l => l.Split(',')[0])];

    /// <summary>The ids and tenants of a Parquet export, read with Parquet.Net row group by row group.</summary>
    private static async Task<(List<string> Ids, List<string> Tenants)> ParquetAsync(byte[] file)
    {
        using var stream = new MemoryStream(file);
        await using var reader = await ParquetReader.CreateAsync(stream);
        var fields = reader.Schema.GetDataFields();
        var (ids, tenants) = (new List<string>(), new List<string>());
        for (var g = 0; g < reader.RowGroupCount; g++)
        {
            using var rg = reader.OpenRowGroupReader(g);
            foreach (var (name, into) in new[] { ("id", ids), ("tenant", tenants) })
            {
                var values = new string?[rg.RowCount];
                await rg.ReadAsync(fields.Single(f => f.Name == name), values.AsMemory());
                into.AddRange(values.Select(v => v!));
            }
        }

        return (ids, tenants);
    }

    /// <summary>The Usage page's day bars, parsed from its SVG: day, good and wasted.</summary>
    private static Dictionary<string, (double Good, double Wasted)> DayBars(string html)
    {
        var svg = XDocument.Parse(Regex.Match(html, "<svg id=\"usage-chart\".*?</svg>", RegexOptions.Singleline).Value);
        return svg.Descendants().Where(e => e.Name.LocalName == "g" && (string?)e.Attribute("class") == "day").ToDictionary(
            e => (string)e.Attribute("data-day")!,
            e => (double.Parse((string)e.Attribute("data-good")!, CultureInfo.InvariantCulture), double.Parse((string)e.Attribute("data-wasted")!, CultureInfo.InvariantCulture)));
    }

    /// <summary>A row of the usage table (UsageTable), its cells' text.</summary>
    private static string UsageRow(string html, string row) =>
        Regex.Match(html, $"<tr class=\"{row}\">(.*?)</tr>", RegexOptions.Singleline) is { Success: true } m ? m.Groups[1].Value : throw new Xunit.Sdk.XunitException($"no {row} row in:\n{html}");
}
