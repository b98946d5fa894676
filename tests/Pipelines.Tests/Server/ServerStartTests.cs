using Pipelines.Server;
using Pipelines.Tests.Support;

namespace Pipelines.Tests.Server;

/// <summary>
/// How `pipelines server` starts where it is deployed: it will not listen beyond loopback
/// without a key.
/// </summary>
public sealed class ServerStartTests : IDisposable
{
    private readonly TempFolder _temp = new();

    [Theory]
    [InlineData("http://0.0.0.0:8080")]
    [InlineData("http://[::]:8080")]
    [InlineData("http://*:8080")]
    [InlineData("http://127.0.0.1:8080;http://+:8081")]
    [InlineData("http://192.0.2.7:8080")]
    public async Task A_server_beyond_loopback_with_no_key_refuses_to_start_with_one_line_saying_how_to_set_one(string urls)
    {
        var result = await CliRunner.RunAsync(["server", "--urls", urls], new Dictionary<string, string?> { ["PIPELINES_POSTGRES"] = TestEnvironment.Postgres, ["HOME"] = _temp.Path });

        Assert.Equal(1, result.ExitCode);
        var open = urls.Split(';').First(u => !u.StartsWith("http://127.", StringComparison.Ordinal));
        Assert.Equal($"error: no access key is configured, so the server may listen on loopback only, not on {open}: set a key first, e.g. PIPELINES_Server__Keys__0__Key=$(openssl rand -hex 24) PIPELINES_Server__Keys__0__Role=full (docs/server.md)", result.Stderr.Trim());
    }

    [Theory]
    [InlineData("http://127.0.0.1:8080", null)]
    [InlineData("http://localhost:8080;http://[::1]:8081", null)]
    [InlineData("https://127.10.0.1:8443/", null)]
    [InlineData("http://0.0.0.0:8080", "http://0.0.0.0:8080")]
    [InlineData("http://pipelines.example:80", "http://pipelines.example:80")]
    [InlineData("http://[::ffff:10.0.0.1]:80", "http://[::ffff:10.0.0.1]:80")]
    public void Loopback_means_localhost_127_0_0_0_8_and_the_IPv6_loopback_only(string urls, string? beyond) =>
        Assert.Equal(beyond, ServerOptions.FirstBeyondLoopback(urls));

    public void Dispose() => _temp.Dispose();
}
