using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;

namespace Pipelines.Tests.Support;

/// <summary>
/// A real Prometheus (Debian's package, installed by scripts/prometheus-deps) on a free loopback
/// port, scraping the given targets every second into a folder of its own; queried through its
/// HTTP API as Grafana would.
/// </summary>
public sealed class PrometheusProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _output = new();
    private readonly HttpClient _http;
    private readonly TempFolder _folder;

    private PrometheusProcess(Process process, string url, TempFolder folder)
    {
        (_process, Url, _folder) = (process, url, folder);
        _http = new HttpClient { BaseAddress = new Uri(url), Timeout = TimeSpan.FromSeconds(10) };
        _process.OutputDataReceived += (_, e) => Append(e.Data);
        _process.ErrorDataReceived += (_, e) => Append(e.Data);
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    public string Url { get; }

    public string Output
    {
        get
        {
            lock (_output)
            {
                return _output.ToString();
            }
        }
    }

    /// <summary>Starts Prometheus scraping each job's targets (host:port) at /metrics every second.</summary>
    public static async Task<PrometheusProcess> StartAsync(IReadOnlyDictionary<string, IReadOnlyList<string>> jobs)
    {
        TestLane.Refuse("Prometheus");
        var folder = new TempFolder();
        var config = new StringBuilder("global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\n  evaluation_interval: 1s\nscrape_configs:\n");
        foreach (var (job, targets) in jobs)
        {
            config.Append(CultureInfo.InvariantCulture, $"  - job_name: {job}\n    static_configs:\n      - targets: [{string.Join(", ", targets.Select(t => $"'{t}'"))}]\n");
        }

        var file = folder.Combine("prometheus.yml");
        await File.WriteAllTextAsync(file, config.ToString());
        var check = await RunAsync("promtool", ["check", "config", file]);
        Assert.True(check.ExitCode == 0, "promtool check config: " + check.Output);

        var url = $"http://127.0.0.1:{FreePort()}";
        var psi = new ProcessStartInfo("prometheus")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in new[] { $"--config.file={file}", $"--storage.tsdb.path={folder.Combine("data")}", $"--web.listen-address={url["http://".Length..]}", "--log.level=warn" })
        {
            psi.ArgumentList.Add(a);
        }

        var prometheus = new PrometheusProcess(Process.Start(psi)!, url, folder);
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < TimeSpan.FromSeconds(60))
        {
            if (prometheus._process.HasExited)
            {
                throw new InvalidOperationException($"prometheus exited with {prometheus._process.ExitCode}\n{prometheus.Output}");
            }

            try
            {
                if ((await prometheus._http.GetAsync("/-/ready")).StatusCode == HttpStatusCode.OK)
                {
                    return prometheus;
                }
            }
            catch (HttpRequestException)
            {
                // Not listening yet.
            }

            await Task.Delay(200);
        }

        await prometheus.DisposeAsync();
        throw new TimeoutException("prometheus was not ready within 60 s\n" + prometheus.Output);
    }

    /// <summary>An instant query: each series' labels and value.</summary>
    public async Task<IReadOnlyList<(IReadOnlyDictionary<string, string> Labels, double Value)>> QueryAsync(string promql)
    {
        using var response = await _http.GetAsync("/api/v1/query?query=" + Uri.EscapeDataString(promql));
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, $"{promql}: {(int)response.StatusCode} {body}");
        var data = JsonDocument.Parse(body).RootElement.GetProperty("data");
        return data.GetProperty("result").EnumerateArray().Select(r => (
            (IReadOnlyDictionary<string, string>)r.GetProperty("metric").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString()!),
            double.Parse(r.GetProperty("value")[1].GetString()!, CultureInfo.InvariantCulture))).ToList();
    }

    /// <summary>The one value of a query that sums to a scalar, or null when it has no series (yet).</summary>
    public async Task<double?> ValueAsync(string promql) => (await QueryAsync(promql)) is [var one] ? one.Value : null;

    /// <summary>Polls a query until its value satisfies <paramref name="done"/>; fails with the last value after <paramref name="limit"/>.</summary>
    public async Task<double> WaitForAsync(string promql, Func<double, bool> done, TimeSpan limit)
    {
        var clock = Stopwatch.StartNew();
        double? last = null;
        while (clock.Elapsed < limit)
        {
            last = await ValueAsync(promql);
            if (last is { } v && done(v))
            {
                return v;
            }

            await Task.Delay(500);
        }

        throw new TimeoutException($"{promql} was {last?.ToString(CultureInfo.InvariantCulture) ?? "absent"} after {limit.TotalSeconds:0} s\n{Output}");
    }

    public async ValueTask DisposeAsync()
    {
        await CliRunner.StopAsync(_process, TimeSpan.FromSeconds(10));
        _process.Dispose();
        _http.Dispose();
        _folder.Dispose();
    }

    private static async Task<(int ExitCode, string Output)> RunAsync(string file, string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync();
        return (p.ExitCode, await stdout + await stderr);
    }

    private void Append(string? line)
    {
        if (line is not null)
        {
            lock (_output)
            {
                _output.AppendLine(line);
            }
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
