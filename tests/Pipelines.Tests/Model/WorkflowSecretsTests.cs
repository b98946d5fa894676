using Pipelines.Model;
using Pipelines.Planning;

namespace Pipelines.Tests.Model;

/// <summary>A step's `secrets` names variables of the worker: the workflow holds names, never values.</summary>
[Unit]
public sealed class WorkflowSecretsTests
{
    private const string Yaml = """
        version: 1
        name: with-secret
        input:
          uri: s3://in-bucket/data/
        steps:
          - name: fetch
            image: tools/fetch:1
            command: ["fetch", "{inputs}"]
            env: { MODE: fast }
            secrets: [API_TOKEN, DB_PASSWORD]
        output:
          uri: s3://out-bucket/results/
        """;

    [Fact]
    public void Parse_keeps_the_names_of_a_steps_secrets()
    {
        var step = WorkflowText.Parse(Yaml).Steps[0];

        Assert.Equal(["API_TOKEN", "DB_PASSWORD"], step.Secrets);
        Assert.Equal(["MODE"], step.Env.Keys);
    }

    [Fact]
    public void Expand_carries_the_names_to_the_step_and_the_task_id_does_not_depend_on_them()
    {
        var workflow = WorkflowText.Parse(Yaml);
        var digests = new Dictionary<string, string> { ["tools/fetch:1"] = "sha256:" + new string('a', 64) };
        IReadOnlyList<InputFile> inputs = [new InputFile("a.fastq", 1, new string('0', 32))];
        var none = new Dictionary<string, string>();

        var step = Planner.Expand(workflow, digests, inputs, none, "t1")[0];
        var without = workflow with { Steps = [workflow.Steps[0] with { Secrets = [] }] };

        Assert.Equal(["API_TOKEN", "DB_PASSWORD"], step.Secrets);
        Assert.DoesNotContain("API_TOKEN", step.Env.Keys);
        Assert.Equal(Planner.TaskId(without, digests, inputs, none), Planner.TaskId(workflow, digests, inputs, none));
    }

    [Theory]
    [InlineData("[API-TOKEN]", "steps[0].secrets[0]", "'API-TOKEN' is not a valid environment variable name")]
    [InlineData("[MODE]", "steps[0].secrets[0]", "'MODE' is also in env; a variable is either a value in the workflow or a secret of the worker")]
    [InlineData("[API_TOKEN, API_TOKEN]", "steps[0].secrets[1]", "'API_TOKEN' is listed twice")]
    public void Parse_bad_secret_name_is_reported_at_its_place(string secrets, string path, string message)
    {
        var p = WorkflowText.Problem(Yaml.Replace("[API_TOKEN, DB_PASSWORD]", secrets, StringComparison.Ordinal));

        Assert.Equal(path, p.Path);
        Assert.Equal(message, p.Message);
    }
}
