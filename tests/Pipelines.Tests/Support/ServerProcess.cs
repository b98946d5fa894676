using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Pipelines.Tests.Support;

/// <summary>
/// A real `pipelines server` process on a free loopback port, as an operator starts it. Its
/// output is kept so that tests can check what it logged.
/// </summary>
public sealed class ServerProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _output = new();

    private ServerProcess(Process process, string url)
    {
        _process = process;
        Url = url;
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

    public static async Task<ServerProcess> StartAsync(IDictionary<string, string?> env, IEnumerable<string>? extraArgs = null)
    {
        TestLane.Refuse("a server process");
        var url = $"http://127.0.0.1:{FreePort()}";
        var server = new ServerProcess(CliRunner.Start(["server", "--urls", url, .. extraArgs ?? []], env), url);
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < TimeSpan.FromSeconds(60))
        {
            if (server._process.HasExited)
            {
                throw new InvalidOperationException($"pipelines server exited with {server._process.ExitCode}\n{server.Output}");
            }

            try
            {
                if ((await http.GetAsync(url + "/healthz")).StatusCode == HttpStatusCode.OK)
                {
                    return server;
                }
            }
            catch (HttpRequestException)
            {
                // Not listening yet.
            }
            catch (TaskCanceledException)
            {
                // Not answering yet.
            }

            await Task.Delay(200);
        }

        await server.DisposeAsync();
        throw new TimeoutException("pipelines server did not answer /healthz within 60 s\n" + server.Output);
    }

    public HttpClient Client(string? key = null)
    {
        var http = new HttpClient { BaseAddress = new Uri(Url), Timeout = TimeSpan.FromSeconds(60) };
        if (key is not null)
        {
            http.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", key);
        }

        return http;
    }

    /// <summary>Stops the server as an operator would (SIGTERM), and kills it if it does not end in time.</summary>
    public async ValueTask DisposeAsync()
    {
        await CliRunner.StopAsync(_process, TimeSpan.FromSeconds(40));
        _process.Dispose();
    }

    private void Append(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_output)
        {
            _output.AppendLine(line);
        }
    }

    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
