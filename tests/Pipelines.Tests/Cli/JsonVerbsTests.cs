using System.Text.Json;
using Pipelines.Tests.Server;
using Pipelines.Tests.Support;

namespace Pipelines.Tests.Cli;

/// <summary>
/// Every verb that prints has --json, as a script calls it (a real CLI process, on PostgreSQL or
/// through a real server): one JSON document on stdout whose first field is the schema
/// docs/cli.md documents for that verb. (status and runs are read in depth by the run verbs'
/// tests; explain and lineage by theirs.)
/// </summary>
[Collection("server")]
[Integration]
public sealed class JsonVerbsTests(ServerFixture fixture) : IClassFixture<ServerFixture>
{
    [Theory]
    [InlineData("pipelines.plan/1", "plan", "workflows/fastq-stats.yaml")]
    [InlineData("pipelines.runs/1", "runs")]
    [InlineData("pipelines.workers/1", "workers")]
    [InlineData("pipelines.triggers/1", "triggers")]
    [InlineData("pipelines.algorithms/1", "algorithm", "list")]
    [InlineData("pipelines.functions/1", "function", "list", "--server")]
    [InlineData("pipelines.runs/1", "runs", "--server")]
    [InlineData("pipelines.workers/1", "workers", "--server")]
    [InlineData("pipelines.triggers/1", "triggers", "--server")]
    public async Task A_verb_that_prints_prints_one_json_document_whose_first_field_is_its_documented_schema(string schema, params string[] verb)
    {
        var args = verb.SelectMany(a => a == "--server" ? ["--server", fixture.Server.Url] : new[] { a }).Append("--json").ToList();
        var result = await CliRunner.RunAsync(args, fixture.Env, TimeSpan.FromMinutes(2));

        Assert.True(result.ExitCode == 0, result.ToString());
        using var document = JsonDocument.Parse(result.Stdout);
        var first = document.RootElement.EnumerateObject().First();
        Assert.Equal(("schema", schema), (first.Name, first.Value.GetString()));
        var docs = await File.ReadAllTextAsync(Path.Combine(TestEnvironment.RepoRoot, "docs", "cli.md"));
        Assert.Contains($"`{schema}`", docs, StringComparison.Ordinal);
    }
}
