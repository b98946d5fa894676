using System.Text.Json;
using Pipelines.Tests.Support;

namespace Pipelines.Tests.Deploy;

/// <summary>
/// deploy/s3-identity, which docker-compose.yml runs in the SeaweedFS container to write its
/// identity file from S3_ACCESS_KEY and S3_SECRET_KEY: run by busybox's sh (SeaweedFS's image is
/// Alpine's) and by Debian's, with keys as AWS makes them and with keys that would break the JSON.
/// The compose test runs Swift in SeaweedFS's place (no registry here), so this is where the script runs.
/// </summary>
[Integration]
public sealed class S3IdentityTests
{
    public static TheoryData<string> Shells => ["busybox", "dash"];

    [Theory]
    [MemberData(nameof(Shells))]
    public async Task Keys_as_AWS_makes_them_give_one_identity_with_exactly_those_keys(string shell)
    {
        var result = await RunAsync(shell, "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY+0=_-");

        Assert.True(result.ExitCode == 0, result.ToString());
        using var json = JsonDocument.Parse(result.Stdout);
        var identity = Assert.Single(json.RootElement.GetProperty("identities").EnumerateArray().ToList());
        var credentials = Assert.Single(identity.GetProperty("credentials").EnumerateArray().ToList());
        Assert.Equal("AKIAIOSFODNN7EXAMPLE", credentials.GetProperty("accessKey").GetString());
        Assert.Equal("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY+0=_-", credentials.GetProperty("secretKey").GetString());
    }

    [Theory]
    [InlineData("busybox", "S3_ACCESS_KEY", "pipe\"lines")]
    [InlineData("busybox", "S3_SECRET_KEY", "x\",\"actions\":[\"Admin\"],\"y\":\"")]
    [InlineData("dash", "S3_SECRET_KEY", "back\\slash")]
    [InlineData("dash", "S3_ACCESS_KEY", "two\nlines")]
    [InlineData("busybox", "S3_ACCESS_KEY", "with space")]
    [InlineData("dash", "S3_SECRET_KEY", "")]
    public async Task A_key_that_would_break_or_add_to_the_JSON_is_refused_by_name_and_nothing_is_written(string shell, string variable, string value)
    {
        var access = variable == "S3_ACCESS_KEY" ? value : "pipelines";
        var secret = variable == "S3_SECRET_KEY" ? value : "c2VjcmV0";

        var result = await RunAsync(shell, access, secret);

        Assert.Equal(1, result.ExitCode);
        Assert.Equal("", result.Stdout);
        Assert.StartsWith($"s3-identity: {variable} ", result.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void Compose_writes_the_S3_servers_identity_with_this_script_and_stops_when_it_refuses()
    {
        var compose = File.ReadAllText(Path.Combine(TestEnvironment.RepoRoot, "docker-compose.yml"));
        Assert.Contains("sh /usr/local/share/pipelines/s3-identity >/tmp/s3.json || exit 1", compose, StringComparison.Ordinal);
        Assert.Contains("- ./deploy/s3-identity:/usr/local/share/pipelines/s3-identity:ro", compose, StringComparison.Ordinal);
        Assert.DoesNotContain("accessKey", compose, StringComparison.Ordinal);
    }

    private static Task<HostCommand.Result> RunAsync(string shell, string access, string secret) => HostCommand.RunAsync(
        shell,
        shell == "busybox" ? ["sh", "deploy/s3-identity"] : ["deploy/s3-identity"],
        new Dictionary<string, string?> { ["S3_ACCESS_KEY"] = access, ["S3_SECRET_KEY"] = secret },
        TimeSpan.FromSeconds(30));
}
