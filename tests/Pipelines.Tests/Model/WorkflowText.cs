using Pipelines.Model;

namespace Pipelines.Tests.Model;

/// <summary>Small workflow files, and short ways to parse them or read why they were refused.</summary>
internal static class WorkflowText
{
    public const string BaseDirectory = "/work/flows";

    /// <summary>The smallest valid workflow: one step over every file of a bucket prefix.</summary>
    public const string Minimal = """
        version: 1
        name: minimal
        input:
          uri: s3://in-bucket/data/
        steps:
          - name: stats
            image: tools/stats:1
            command: ["stats", "{inputs}"]
        output:
          uri: s3://out-bucket/results/
        """;

    public static Workflow Parse(string yaml, params string[] overrides) =>
        WorkflowParser.Parse(yaml, "test.yaml", BaseDirectory, overrides);

    public static IReadOnlyList<WorkflowProblem> Problems(string yaml, params string[] overrides) =>
        Assert.Throws<WorkflowInvalidException>(() => Parse(yaml, overrides)).Problems;

    /// <summary>The one problem of a file that breaks the contract in exactly one place.</summary>
    public static WorkflowProblem Problem(string yaml, params string[] overrides) =>
        Assert.Single(Problems(yaml, overrides));
}
