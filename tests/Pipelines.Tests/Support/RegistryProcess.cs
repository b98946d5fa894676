using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace Pipelines.Tests.Support;

/// <summary>
/// A real Docker registry (Debian's docker-registry, the distribution project's registry 2.8)
/// of the test's own on a free loopback port, with one user in an htpasswd file: the engine
/// treats 127.0.0.0/8 as an insecure registry, so plain HTTP with basic auth works. Killed by
/// its PID at dispose; its storage is a temporary folder.
/// </summary>
public sealed class RegistryProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly TempFolder _folder;

    private RegistryProcess(Process process, TempFolder folder, int port)
    {
        _process = process;
        _folder = folder;
        Host = $"127.0.0.1:{port}";
    }

    public const string User = "pipelines-tester";

    public const string Password = "registry-s3cret";

    /// <summary>host:port, as image names and Algorithms:Registries:*:Host write it.</summary>
    public string Host { get; }

    public static async Task<RegistryProcess> StartAsync()
    {
        TestLane.Refuse("a registry process");
        var folder = new TempFolder();
        var htpasswd = await Run("htpasswd", ["-Bbn", User, Password]);
        File.WriteAllText(folder.Combine("htpasswd"), htpasswd);
        int port;
        using (var probe = new TcpListener(IPAddress.Loopback, 0))
        {
            probe.Start();
            port = ((IPEndPoint)probe.LocalEndpoint).Port;
        }

        var config = folder.Write("config.yml", $"""
            version: 0.1
            log:
              level: warn
            storage:
              filesystem:
                rootdirectory: {folder.Combine("data")}
            http:
              addr: 127.0.0.1:{port}
              secret: pipelines-test-registry
            auth:
              htpasswd:
                realm: pipelines-tests
                path: {folder.Combine("htpasswd")}
            """);
        var psi = new ProcessStartInfo("docker-registry", ["serve", config]) { RedirectStandardOutput = true, RedirectStandardError = true };
        var process = Process.Start(psi) ?? throw new InvalidOperationException("docker-registry did not start");
        _ = process.StandardOutput.ReadToEndAsync();
        _ = process.StandardError.ReadToEndAsync();
        var registry = new RegistryProcess(process, folder, port);

        // Ready when /v2/ answers (401 without credentials is an answer).
        using var http = new HttpClient();
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < TimeSpan.FromSeconds(30) && !process.HasExited)
        {
            try
            {
                using var response = await http.GetAsync($"http://{registry.Host}/v2/");
                if (response.StatusCode == HttpStatusCode.Unauthorized)
                {
                    return registry;
                }
            }
            catch (HttpRequestException)
            {
                // Not listening yet.
            }

            await Task.Delay(50);
        }

        var exited = process.HasExited;
        await registry.DisposeAsync();
        throw new InvalidOperationException($"docker-registry on {registry.Host} did not answer /v2/ with 401 within 30 s (exited: {exited})");
    }

    private static async Task<string> Run(string program, string[] args)
    {
        var psi = new ProcessStartInfo(program, args) { RedirectStandardOutput = true, RedirectStandardError = true };
        using var p = Process.Start(psi) ?? throw new InvalidOperationException(program + " did not start");
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync();
        Assert.True(p.ExitCode == 0, $"{program}: {await stderr}");
        return await stdout;
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }

        _process.Dispose();
        _folder.Dispose();
    }
}
