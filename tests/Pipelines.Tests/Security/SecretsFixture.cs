using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Amazon.S3.Model;
using Npgsql;
using Pipelines.Storage;
using Pipelines.Tests.EndToEnd;
using Pipelines.Tests.Server;
using Pipelines.Tests.Support;

namespace Pipelines.Tests.Security;

/// <summary>
/// One `pipelines server` process whose configuration holds known, random secrets: a database
/// password (PostgreSQL here trusts loopback, so it is sent and ignored), two access keys, an
/// extra PIPELINES_ setting and a plain variable, besides the S3 secret key, which Swift fixes.
/// Over the API it runs a workflow that succeeds (its step dumps its environment), one whose step
/// fails, one that is cancelled while its container runs, and one submitted with the CLI; the
/// tests then search everything those runs leave.
/// </summary>
public sealed class SecretsFixture : IAsyncLifetime
{
    private readonly string _schema = TestEnvironment.NewName("sec_");

    public ObjectStoreFactory Stores { get; } = new(TestEnvironment.S3);

    public TempFolder Temp { get; } = new();

    public string Bucket { get; private set; } = null!;

    public ServerProcess Server { get; private set; } = null!;

    public Dictionary<string, string?> Env { get; private set; } = null!;

    public string DbPassword { get; } = Random("dbpw");

    public string ReadKey { get; } = Random("readkey");

    public string FullKey { get; } = Random("fullkey");

    /// <summary>A key that is not configured: a client's typo must not be echoed or logged either.</summary>
    public string WrongKey { get; } = Random("wrongkey");

    public string TestSecret { get; } = Random("pipelines-test-secret");

    public string PlainSecret { get; } = Random("plain-api-token");

    /// <summary>The value of the worker's secret API_TOKEN, which a step asks for by name.</summary>
    public string WorkflowSecret { get; } = Random("workflow-secret");

    /// <summary>The values that must appear nowhere: each long and random, so a hit is a leak.</summary>
    public IReadOnlyList<string> Secrets => [DbPassword, ReadKey, FullKey, WrongKey, TestSecret, PlainSecret, WorkflowSecret];

    public string SucceededRun { get; private set; } = null!;

    public string FailedRun { get; private set; } = null!;

    public string CancelledRun { get; private set; } = null!;

    public string CliRun { get; private set; } = null!;

    public string SecretRun { get; private set; } = null!;

    public string MissingSecretRun { get; private set; } = null!;

    public CliRunner.Result CliRunResult { get; private set; } = null!;

    public CliRunner.Result CliStatusResult { get; private set; } = null!;

    public CliRunner.Result CliWrongKeyResult { get; private set; } = null!;

    /// <summary>Answers to refused and failed requests, made before any test reads the server's log.</summary>
    public IReadOnlyList<(string Where, string Text)> ErrorAnswers { get; private set; } = [];

    public string Postgres => new NpgsqlConnectionStringBuilder(TestEnvironment.Postgres) { Password = DbPassword }.ConnectionString;

    public async Task InitializeAsync()
    {
        Bucket = await TestEnvironment.NewBucketAsync(Stores.S3Client);
        Env = new()
        {
            ["PIPELINES_POSTGRES"] = Postgres,
            ["PIPELINES_Schema"] = _schema,
            ["PIPELINES_Hangfire__Schema"] = _schema + "_hangfire",
            ["PIPELINES_HOME"] = Temp.Combine("home"),
            ["PIPELINES_Worker__Concurrency"] = "2",
            ["PIPELINES_Server__Bucket"] = Bucket,
            ["PIPELINES_Server__Keys__0__Key"] = ReadKey,
            ["PIPELINES_Server__Keys__0__Role"] = "read",
            ["PIPELINES_Server__Keys__0__Name"] = "viewer",
            ["PIPELINES_Server__Keys__1__Key"] = FullKey,
            ["PIPELINES_Server__Keys__1__Role"] = "full",
            ["PIPELINES_Server__Keys__1__Name"] = "operator",

            // The S3 credentials also as configuration, where a dump of it would show them.
            ["PIPELINES_S3__AccessKey"] = TestEnvironment.Require("AWS_ACCESS_KEY_ID"),
            ["PIPELINES_S3__SecretKey"] = TestEnvironment.Require("AWS_SECRET_ACCESS_KEY"),
            ["PIPELINES_TEST_SECRET"] = TestSecret,
            ["MY_API_TOKEN"] = PlainSecret,
            ["PIPELINES_Secrets__API_TOKEN"] = WorkflowSecret,
        };

        var input = Stores.Open($"s3://{Bucket}/raw/");
        foreach (var f in Directory.EnumerateFiles(Path.Combine(TestEnvironment.SampleFastq, "lane1"), "*.fastq").Order(StringComparer.Ordinal).Take(2))
        {
            await input.Store.UploadAsync(input.Key("lane1/" + Path.GetFileName(f)), f, CancellationToken.None);
        }

        Server = await ServerProcess.StartAsync(Env);
        using var http = Server.Client(FullKey);

        SucceededRun = await ServerFixture.SubmitAsync(http, EnvWorkflow);
        FailedRun = await ServerFixture.SubmitAsync(http, FailingWorkflow);
        SecretRun = await ServerFixture.SubmitAsync(http, SecretWorkflow);
        MissingSecretRun = await ServerFixture.SubmitAsync(http, SecretWorkflow.Replace("[API_TOKEN]", "[NOT_ON_THIS_WORKER]", StringComparison.Ordinal).Replace("/with-secret/", "/missing-secret/", StringComparison.Ordinal));
        CancelledRun = await ServerFixture.SubmitAsync(http, SleepWorkflow);
        await ServerFixture.WaitForAsync(http, CancelledRun, r => r.GetProperty("counts").GetProperty("running").GetInt32() > 0, TimeSpan.FromMinutes(1));
        while ((await ServerFixture.ContainersOfAsync(CancelledRun)).Count == 0)
        {
            await Task.Delay(200);
        }

        using (var cancel = await http.PostAsync($"/api/runs/{CancelledRun}/cancel", null))
        {
            cancel.EnsureSuccessStatusCode();
        }

        await ServerFixture.WaitForAsync(http, SucceededRun, r => r.GetProperty("state").GetString() == "succeeded", TimeSpan.FromMinutes(2));
        await ServerFixture.WaitForAsync(http, FailedRun, r => r.GetProperty("state").GetString() == "failed", TimeSpan.FromMinutes(2));
        await ServerFixture.WaitForAsync(http, CancelledRun, r => r.GetProperty("state").GetString() == "cancelled", TimeSpan.FromMinutes(1));
        await ServerFixture.WaitForAsync(http, SecretRun, r => r.GetProperty("state").GetString() == "succeeded", TimeSpan.FromMinutes(2));
        await ServerFixture.WaitForAsync(http, MissingSecretRun, r => r.GetProperty("state").GetString() == "failed", TimeSpan.FromMinutes(2));

        var cliEnv = new Dictionary<string, string?> { ["PIPELINES_HOME"] = Temp.Combine("cli-home"), ["PIPELINES_SERVER_KEY"] = FullKey, ["PIPELINES_TEST_SECRET"] = TestSecret };
        var workflow = Temp.Write("env.yaml", EnvWorkflow.Replace("/envdump/", "/cli/", StringComparison.Ordinal));
        CliRunResult = await CliRunner.RunAsync(["run", workflow, "--server", Server.Url], cliEnv, TimeSpan.FromMinutes(3));
        Assert.True(CliRunResult.ExitCode == 0, CliRunResult.ToString());
        CliRun = RunFolder.RunIdFrom(CliRunResult);
        CliStatusResult = await CliRunner.RunAsync(["status", CliRun, "--server", Server.Url], cliEnv);
        Assert.True(CliStatusResult.ExitCode == 0, CliStatusResult.ToString());
        CliWrongKeyResult = await CliRunner.RunAsync(["status", CliRun, "--server", Server.Url, "--key", WrongKey], cliEnv);
        Assert.NotEqual(0, CliWrongKeyResult.ExitCode);
        ErrorAnswers = await ProbeErrorsAsync();
    }

    private async Task<List<(string Where, string Text)>> ProbeErrorsAsync()
    {
        using var full = Server.Client(FullKey);
        using var read = Server.Client(ReadKey);
        using var wrong = Server.Client(WrongKey);
        using var anonymous = Server.Client();
        return
        [
            await GetAsync(full, "/api/runs/20000101-000000-000000"),
            await GetAsync(full, "/api/runs?state=sleeping"),
            await GetAsync(full, "/api/runs?limit=100000"),
            await GetAsync(full, "/api/no-such-endpoint"),
            await GetAsync(anonymous, "/api/runs"),
            await GetAsync(wrong, "/api/runs"),
            await GetAsync(wrong, "/hangfire/runs"),
            await PostJsonAsync(read, "/api/runs", new { workflow = EnvWorkflow }),
            await PostJsonAsync(full, "/api/runs", new { workflow = "version: 1\nname: Not Valid!\n" }),
            await PostJsonAsync(full, "/api/runs", new { workflow = EnvWorkflow.Replace($"s3://{Bucket}/envdump/", "s3://no-such-bucket-for-secrets/x/", StringComparison.Ordinal) }),
            await PostJsonAsync(full, "/api/runs", new { workflow = EnvWorkflow.Replace($"s3://{Bucket}/raw/", $"s3://{Bucket}/nothing-here/", StringComparison.Ordinal) }),
            await PostJsonAsync(full, "/api/runs", new { workflow = EnvWorkflow.Replace("pipelines-samples/pair-check:1", "pipelines-samples/no-such-image:1", StringComparison.Ordinal) }),
            await PostAsync(full, "/api/runs", new StringContent("{not json", Encoding.UTF8, "application/json")),
            await PostAsync(full, $"/api/runs/{SucceededRun}/cancel", new StringContent("")),
            await PostAsync(anonymous, "/login", new FormUrlEncodedContent([new("key", WrongKey)])),

            // A GET of the dashboard's POST-only stats route fails inside Hangfire: an unhandled exception, logged whole.
            await GetAsync(full, "/hangfire/stats"),
        ];
    }

    public async Task DisposeAsync()
    {
        await Server.DisposeAsync();
        await using var db = NpgsqlDataSource.Create(TestEnvironment.Postgres);
        await using (var cmd = db.CreateCommand($"DROP SCHEMA IF EXISTS {_schema} CASCADE; DROP SCHEMA IF EXISTS {_schema}_hangfire CASCADE"))
        {
            await cmd.ExecuteNonQueryAsync();
        }

        Stores.Dispose();
        Temp.Dispose();
    }

    /// <summary>One task whose step writes its whole environment to a kept file, and a row for a result table.</summary>
    public string EnvWorkflow => $$"""
        version: 1
        name: envdump
        input:
          uri: s3://{{Bucket}}/raw/
          include: ["lane1/*.fastq"]
          batch: 10
        steps:
          - name: dump
            image: pipelines-samples/pair-check:1
            command: ["busybox", "sh", "-c", "env > /out/env.txt; printf 'dump\\t1\\n' > /out/row.tsv"]
            env: { STEP_OWN: "step-value" }
            resources: { cpus: 0.1, memory: 32Mi, timeout: 2m }
            retries: 0
            outputs: ["*.txt", "*.tsv"]
        gather:
          - name: rows
            from: dump/*.tsv
            format: tsv
            header: false
            columns: [step, n]
            to: [parquet, csv]
        output:
          uri: s3://{{Bucket}}/envdump/
        """;

    /// <summary>
    /// A step that asks for the worker's secret API_TOKEN, keeps its sha256 (so the test knows the
    /// container saw it) and prints it, which the kept log must not show.
    /// </summary>
    public string SecretWorkflow => $$"""
        version: 1
        name: with-secret
        input:
          uri: s3://{{Bucket}}/raw/
          include: ["lane1/*.fastq"]
          batch: 10
        steps:
          - name: use
            image: pipelines-samples/pair-check:1
            command: ["busybox", "sh", "-c", "printf %s \"$API_TOKEN\" | sha256sum | cut -d ' ' -f 1 > /out/token.sha256; echo \"token is $API_TOKEN\"; echo \"$API_TOKEN\" >&2"]
            secrets: [API_TOKEN]
            resources: { cpus: 0.1, memory: 32Mi, timeout: 2m }
            retries: 0
            outputs: ["*.sha256"]
        output:
          uri: s3://{{Bucket}}/with-secret/
        """;

    public string FailingWorkflow => $$"""
        version: 1
        name: failing
        input:
          uri: s3://{{Bucket}}/raw/
          include: ["lane1/*.fastq"]
          batch: 10
        steps:
          - name: fail
            image: pipelines-samples/pair-check:1
            command: ["busybox", "sh", "-c", "echo failing on purpose >&2; exit 3"]
            resources: { cpus: 0.1, memory: 32Mi, timeout: 2m }
            retries: 0
            outputs: ["*.tsv"]
        output:
          uri: s3://{{Bucket}}/failing/
        on_error: fail
        """;

    public string SleepWorkflow => $$"""
        version: 1
        name: sleepy
        input:
          uri: s3://{{Bucket}}/raw/
          include: ["lane1/*.fastq"]
          batch: 10
        steps:
          - name: nap
            image: pipelines-samples/pair-check:1
            command: ["busybox", "sleep", "120"]
            resources: { cpus: 0.1, memory: 32Mi, timeout: 5m }
            retries: 0
            outputs: ["*.tsv"]
        output:
          uri: s3://{{Bucket}}/sleepy/
        """;

    public IEnumerable<string> RunIds => [SucceededRun, FailedRun, CancelledRun, CliRun, SecretRun, MissingSecretRun];

    /// <summary>Every object in the bucket but the inputs, as text; Parquet files also decoded (their pages are compressed).</summary>
    public async Task<List<(string Where, string Text)>> StoredObjectsAsync()
    {
        var found = new List<(string, string)>();
        string? token = null;
        do
        {
            var page = await Stores.S3Client.ListObjectsV2Async(new ListObjectsV2Request { BucketName = Bucket, ContinuationToken = token });
            foreach (var o in page.S3Objects ?? [])
            {
                if (o.Key.StartsWith("raw/", StringComparison.Ordinal))
                {
                    continue;
                }

                var bytes = await Stores.Open($"s3://{Bucket}/").Store.ReadAllAsync(o.Key, CancellationToken.None);
                found.Add(($"s3://{Bucket}/{o.Key}", Encoding.UTF8.GetString(bytes)));
                if (o.Key.EndsWith(".parquet", StringComparison.Ordinal))
                {
                    found.Add(($"s3://{Bucket}/{o.Key} (decoded)", JsonSerializer.Serialize(await ParquetTables.ReadAsync(bytes))));
                }
            }

            token = page.IsTruncated == true ? page.NextContinuationToken : null;
        }
        while (token is not null);
        return found;
    }

    /// <summary>The keys of a run's folder, relative to it, for the API's files endpoint.</summary>
    public async Task<List<string>> RunFilesAsync(string runId)
    {
        var marker = $"/{runId}/";
        var page = await Stores.S3Client.ListObjectsV2Async(new ListObjectsV2Request { BucketName = Bucket });
        return (page.S3Objects ?? []).Select(o => o.Key).Where(k => k.Contains(marker, StringComparison.Ordinal))
            .Select(k => k[(k.IndexOf(marker, StringComparison.Ordinal) + marker.Length)..]).ToList();
    }

    /// <summary>Every row of every table of the run store's and Hangfire's schemas, as JSON.</summary>
    public async Task<List<(string Where, string Text)>> DatabaseRowsAsync()
    {
        var found = new List<(string, string)>();
        await using var db = NpgsqlDataSource.Create(TestEnvironment.Postgres);
        var tables = new List<string>();
        await using (var cmd = db.CreateCommand("SELECT table_schema || '.' || table_name FROM information_schema.tables WHERE table_schema = ANY($1) AND table_type = 'BASE TABLE'"))
        {
            cmd.Parameters.AddWithValue(new[] { _schema, _schema + "_hangfire" });
            await using var reader = await cmd.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                tables.Add(reader.GetString(0));
            }
        }

        foreach (var table in tables)
        {
            await using var cmd = db.CreateCommand($"SELECT coalesce(string_agg(row_to_json(t)::text, E'\\n'), '') FROM {table} t");
            found.Add(($"table {table}", (string)(await cmd.ExecuteScalarAsync())!));
        }

        return found;
    }

    /// <summary>GETs a path with the full key and keeps the answer, whatever its status.</summary>
    public static async Task<(string Where, string Text)> GetAsync(HttpClient http, string path)
    {
        using var response = await http.GetAsync(path);
        return ($"GET {path} ({(int)response.StatusCode})", await response.Content.ReadAsStringAsync());
    }

    public static async Task<(string Where, string Text)> PostAsync(HttpClient http, string path, HttpContent content)
    {
        using var response = await http.PostAsync(path, content);
        return ($"POST {path} ({(int)response.StatusCode})", await response.Content.ReadAsStringAsync());
    }

    public static async Task<(string Where, string Text)> PostJsonAsync(HttpClient http, string path, object body)
    {
        using var response = await http.PostAsJsonAsync(path, body);
        return ($"POST {path} ({(int)response.StatusCode})", await response.Content.ReadAsStringAsync());
    }

    /// <summary>
    /// Fails with every place where a secret was found. Besides the random values, it looks for
    /// the S3 secret key whole (Swift's is a short word, so only as a word) and for secret
    /// settings followed by a value, which only a dump of the configuration or environment prints.
    /// </summary>
    /// <returns>What was searched, for the test's output.</returns>
    public string AssertNoSecret(IEnumerable<(string Where, string Text)> haystack)
    {
        long chars = 0;
        var s3Secret = new Regex("(?<![A-Za-z0-9])" + Regex.Escape(TestEnvironment.Require("AWS_SECRET_ACCESS_KEY")) + "(?![A-Za-z0-9])");
        // Error messages may name a setting to check; a name followed by a value is a dump.
        string[] names = ["AWS_SECRET_ACCESS_KEY=", "SecretKey=", "\"SecretKey\":", "PIPELINES_TEST_SECRET=", "MY_API_TOKEN=", "Password=", "Server__Keys__"];
        var hits = new List<string>();
        var searched = 0;
        foreach (var (where, text) in haystack)
        {
            searched++;
            chars += text.Length;
            foreach (var secret in Secrets.Concat(names))
            {
                var at = text.IndexOf(secret, StringComparison.OrdinalIgnoreCase);
                if (at >= 0)
                {
                    hits.Add($"{where}: '{secret}' in …{Around(text, at)}…");
                }
            }

            if (s3Secret.Match(text) is { Success: true } m)
            {
                hits.Add($"{where}: the S3 secret key in …{Around(text, m.Index)}…");
            }
        }

        Assert.True(searched > 0, "nothing was searched");
        Assert.True(hits.Count == 0, $"{hits.Count} secret(s) found in {searched} place(s) searched:\n" + string.Join('\n', hits));
        return $"no secret in {searched} place(s), {chars} characters";
    }

    private static string Around(string text, int at) => text.Substring(Math.Max(0, at - 80), Math.Min(text.Length, at + 120) - Math.Max(0, at - 80)).ReplaceLineEndings(" ");

    private static string Random(string prefix) => $"{prefix}-{Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(16))}";
}
