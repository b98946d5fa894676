using Pipelines.Tests.Support;

namespace Pipelines.Tests.Storage;

/// <summary>
/// Credentials come as AWS users give them: with no S3:AccessKey the SDK's own chain finds them
/// (environment with a session token, a shared profile), and explicit ones may carry a session
/// token too. Swift's s3api takes temporary credentials only through its own tempauth, so these
/// tests check what the real CLI sends to a listener on loopback: the access key, the
/// X-Amz-Security-Token header and a signature made with the matching secret.
/// </summary>
[Integration]
public sealed class S3CredentialsTests : IDisposable
{
    private const string KeyId = "ASIAPIPELINESTEST001";
    private const string Secret = "temporary-secret-6d1f0b9e2c";
    private const string Token = "FwoGZXIvYXdzEPipelinesSessionToken/with+slashes==";

    private readonly TempFolder _home = new();

    [Fact]
    public async Task Temporary_credentials_in_the_environment_sign_with_their_session_token()
    {
        await using var s3 = new S3Recorder(S3Recorder.EmptyListing);

        var result = await ListAsync(s3, new() { ["AWS_ACCESS_KEY_ID"] = KeyId, ["AWS_SECRET_ACCESS_KEY"] = Secret, ["AWS_SESSION_TOKEN"] = Token });

        AssertSignedWithTheTemporaryCredentials(result, s3);
        Assert.False(SigV4.Verify(Assert.Single(s3.Requests), "another-secret"));
    }

    [Fact]
    public async Task With_no_keys_set_the_shared_profile_named_by_AWS_PROFILE_signs()
    {
        await using var s3 = new S3Recorder(S3Recorder.EmptyListing);
        var credentials = _home.Write(".aws/credentials", $"""
            [default]
            aws_access_key_id = AKIADEFAULTPROFILE01
            aws_secret_access_key = default-secret

            [pipelines-test]
            aws_access_key_id = {KeyId}
            aws_secret_access_key = {Secret}
            aws_session_token = {Token}
            """);

        var result = await ListAsync(s3, new() { ["AWS_SHARED_CREDENTIALS_FILE"] = credentials, ["AWS_PROFILE"] = "pipelines-test" });

        AssertSignedWithTheTemporaryCredentials(result, s3);
    }

    [Fact]
    public async Task Explicit_keys_in_the_configuration_win_over_the_environment_and_carry_their_session_token()
    {
        await using var s3 = new S3Recorder(S3Recorder.EmptyListing);

        var result = await ListAsync(s3, new()
        {
            ["AWS_ACCESS_KEY_ID"] = "AKIAENVIRONMENTKEY01",
            ["AWS_SECRET_ACCESS_KEY"] = "environment-secret",
            ["PIPELINES_S3__AccessKey"] = KeyId,
            ["PIPELINES_S3__SecretKey"] = Secret,
            ["PIPELINES_S3__SessionToken"] = Token,
        });

        AssertSignedWithTheTemporaryCredentials(result, s3);
    }

    [Fact]
    public async Task A_refused_session_token_is_one_line_naming_the_variable_and_never_its_value()
    {
        await using var s3 = new S3Recorder(_ => S3Recorder.Reply.Error(400, "ExpiredToken", "The provided token has expired."));

        var result = await ListAsync(s3, new() { ["AWS_ACCESS_KEY_ID"] = KeyId, ["AWS_SECRET_ACCESS_KEY"] = Secret, ["AWS_SESSION_TOKEN"] = Token });

        Assert.Equal(1, result.ExitCode);
        Assert.Equal("error: s3://data: access denied (ExpiredToken): the session token of temporary credentials was refused; check AWS_SESSION_TOKEN, or renew the credentials", result.Stderr.Trim());
        Assert.DoesNotContain(Secret, result.Stdout + result.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain(Token, result.Stdout + result.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task No_credentials_anywhere_is_one_line_naming_what_to_set_and_nothing_is_sent()
    {
        await using var s3 = new S3Recorder(S3Recorder.EmptyListing);

        var result = await ListAsync(s3, []);

        Assert.Equal(1, result.ExitCode);
        Assert.Equal("error: s3://data: no S3 credentials were found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (with AWS_SESSION_TOKEN for temporary credentials), AWS_PROFILE, or S3:AccessKey and S3:SecretKey; on EC2, ECS or EKS a role", result.Stderr.Trim());
        Assert.Empty(s3.Requests);
    }

    [Fact]
    public async Task Half_of_an_explicit_key_pair_is_refused_before_anything_is_sent()
    {
        await using var s3 = new S3Recorder(S3Recorder.EmptyListing);

        var result = await ListAsync(s3, new() { ["PIPELINES_S3__AccessKey"] = KeyId });

        Assert.Equal(1, result.ExitCode);
        Assert.Contains("set S3:AccessKey and S3:SecretKey together", result.Stderr, StringComparison.Ordinal);
        Assert.Empty(s3.Requests);
    }

    public void Dispose() => _home.Dispose();

    /// <summary>The listing succeeded with one request, which carries the session token and is signed, token included, with the temporary key and secret.</summary>
    private static void AssertSignedWithTheTemporaryCredentials(CliRunner.Result result, S3Recorder s3)
    {
        Assert.True(result.ExitCode == 0, result.ToString());
        var request = Assert.Single(s3.Requests);
        Assert.Equal(Token, request.Header("x-amz-security-token"));
        var auth = SigV4.Parse(request.Header("authorization")!);
        Assert.Equal(KeyId, auth.AccessKeyId);
        Assert.Contains("x-amz-security-token", auth.SignedHeaders);
        Assert.True(SigV4.Verify(request, Secret), "the signature is not the one the temporary secret makes");
    }

    /// <summary>
    /// `pipelines s3 ls` against the recorder, with none of the suite's own credentials: HOME,
    /// the shared files and the instance metadata are the test's (IMDS off, so no request leaves
    /// loopback), and only <paramref name="env"/> adds any.
    /// </summary>
    private Task<CliRunner.Result> ListAsync(S3Recorder s3, Dictionary<string, string?> env)
    {
        var all = new Dictionary<string, string?>
        {
            ["AWS_ENDPOINT_URL"] = s3.Endpoint,
            ["AWS_EC2_METADATA_DISABLED"] = "true",
            ["HOME"] = _home.Path,
            ["AWS_SHARED_CREDENTIALS_FILE"] = _home.Combine("none", "credentials"),
            ["AWS_CONFIG_FILE"] = _home.Combine("none", "config"),
            ["AWS_ACCESS_KEY_ID"] = null,
            ["AWS_SECRET_ACCESS_KEY"] = null,
            ["AWS_SESSION_TOKEN"] = null,
            ["AWS_PROFILE"] = null,
            ["AWS_WEB_IDENTITY_TOKEN_FILE"] = null,
            ["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"] = null,
            ["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = null,
        };
        foreach (var (k, v) in env)
        {
            all[k] = v;
        }

        return CliRunner.RunAsync(["s3", "ls", "s3://data/"], all, TimeSpan.FromMinutes(2));
    }
}
