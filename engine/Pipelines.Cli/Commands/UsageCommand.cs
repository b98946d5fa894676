using System.ComponentModel;
using System.Globalization;
using System.Text.Json;
using Spectre.Console.Cli;

namespace Pipelines.Cli.Commands;

/// <summary>
/// `pipelines usage`: what the caller's tenant (an admin key: every tenant, or --tenant) used and
/// what it cost, summed by day or hour from the server's usage ledger (GET /api/usage), or the
/// records themselves exported (GET /api/usage/records) to a CSV, JSON-lines or Parquet file.
/// </summary>
public sealed class UsageCommand : AsyncCommand<UsageCommand.Settings>
{
    public const string Schema = "pipelines.usage/1";

    public sealed class Settings : FunctionJsonSettings
    {
        [CommandOption("--since <WHEN>")]
        [Description("From this far back (30d, 12h) or this time (2026-12-01, 2026-12-01T10:00:00Z); default 30d.")]
        public string Since { get; init; } = "30d";

        [CommandOption("--until <WHEN>")]
        [Description("Up to this time (as --since); default now.")]
        public string? Until { get; init; }

        [CommandOption("--by <BUCKET>")]
        [Description("day (default) or hour.")]
        public string By { get; init; } = "day";

        [CommandOption("--run <RUN>")]
        [Description("Only this run's task deliveries.")]
        public string? Run { get; init; }

        [CommandOption("--function <NAME>")]
        [Description("Only this function's invocations.")]
        public string? Function { get; init; }

        [CommandOption("--csv <FILE>")]
        [Description("Write the records themselves to FILE as CSV (streamed) instead of the sums.")]
        public string? Csv { get; init; }

        [CommandOption("--jsonl <FILE>")]
        [Description("Write the records themselves to FILE as JSON lines (streamed) instead of the sums.")]
        public string? Jsonl { get; init; }

        [CommandOption("--parquet <FILE>")]
        [Description("Write the records themselves to FILE as Parquet (streamed, in row groups) instead of the sums.")]
        public string? Parquet { get; init; }
    }

    public override async Task<int> ExecuteAsync(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        var query = string.Join('&', new[]
        {
            ("from", (string?)settings.Since), ("to", settings.Until), ("by", settings.By), ("run", settings.Run), ("function", settings.Function),
        }.Where(p => !string.IsNullOrEmpty(p.Item2)).Select(p => p.Item1 + "=" + Uri.EscapeDataString(p.Item2!)));
        using var client = settings.Client();
        var exports = new[] { ("--csv", settings.Csv, "csv"), ("--jsonl", settings.Jsonl, "json"), ("--parquet", settings.Parquet, "parquet") }.Where(e => e.Item2 is not null).ToList();
        if (exports.Count > 1)
        {
            throw new PipelinesException($"{string.Join(" and ", exports.Select(e => e.Item1))}: give one of them", retryHelps: false);
        }

        if (exports is [var (_, file, format)])
        {
            var part = file + ".part";
            await using (var output = File.Create(part))
            {
                await client.DownloadUsageAsync(query + "&format=" + format, output, cancellationToken).ConfigureAwait(false);
            }

            File.Move(part, file!, overwrite: true);
            Console.Error.WriteLine($"usage records written to {file}");
            return Cli.Ok;
        }

        var json = await client.GetUsageAsync(query, cancellationToken).ConfigureAwait(false);
        if (settings.Json)
        {
            JsonOut.WriteJson(Schema, json);
            return Cli.Ok;
        }

        using var document = JsonDocument.Parse(json);
        var rows = document.RootElement.GetProperty("rows");
        if (rows.GetArrayLength() == 0)
        {
            Console.WriteLine("no usage recorded in this period");
            WriteBudgets(document.RootElement);
            return Cli.Ok;
        }

        Console.WriteLine($"{(settings.By == "hour" ? "hour" : "day"),-17} {"tenant",-12} {"kind",-10} {"outcome",-10} {"records",8} {"cpu-s",10} {"GB-s",10} {"wall-s",10} {"cost",12}");
        foreach (var r in rows.EnumerateArray())
        {
            var start = r.GetProperty("start").GetDateTimeOffset().UtcDateTime;
            var when = settings.By == "hour" ? start.ToString("yyyy-MM-dd HH:00", CultureInfo.InvariantCulture) : start.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);
            var kind = r.GetProperty("kind").GetString() + (r.GetProperty("harvested").GetBoolean() ? "*" : "");
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{when,-17} {r.GetProperty("tenant").GetString(),-12} {kind,-10} {r.GetProperty("outcome").GetString(),-10} {r.GetProperty("records").GetInt64(),8} {r.GetProperty("cpuSeconds").GetDouble(),10:0.###} {r.GetProperty("gbSeconds").GetDouble(),10:0.###} {r.GetProperty("wallSeconds").GetDouble(),10:0.###} {r.GetProperty("cost").GetDouble(),12:0.######} {r.GetProperty("currency").GetString()}"));
        }

        foreach (var t in document.RootElement.GetProperty("totals").EnumerateArray())
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"total: {t.GetProperty("records").GetInt64()} records, {t.GetProperty("cpuSeconds").GetDouble():0.###} cpu-s, {t.GetProperty("gbSeconds").GetDouble():0.###} GB-s, {t.GetProperty("cost").GetDouble():0.######} {t.GetProperty("currency").GetString()}; wasted (vacated, failed): {t.GetProperty("wastedRecords").GetInt64()} records, {t.GetProperty("wastedCost").GetDouble():0.######} {t.GetProperty("currency").GetString()}"));
        }

        Console.WriteLine("(* harvested: ran in the kernel's idle class)");
        WriteBudgets(document.RootElement);
        return Cli.Ok;
    }

    /// <summary>Each budget the answer holds (a tenant's current period, whatever the query's): amount, spent, balance, and whether new work waits.</summary>
    private static void WriteBudgets(JsonElement answer)
    {
        if (!answer.TryGetProperty("budgets", out var budgets))
        {
            return;
        }

        foreach (var b in budgets.EnumerateArray())
        {
            var currency = b.GetProperty("currency").GetString();
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"budget of {b.GetProperty("tenant").GetString()} for {b.GetProperty("period").GetString()}: {b.GetProperty("amount").GetDouble():0.######} {currency}, spent {b.GetProperty("spent").GetDouble():0.######}, balance {b.GetProperty("balance").GetDouble():0.######}{(b.GetProperty("waits").GetBoolean() ? " (spent: new work waits)" : "")}"));
        }
    }
}
