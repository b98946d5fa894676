using Pipelines.Model;
using Pipelines.Planning;
using Pipelines.Tests.Model;

namespace Pipelines.Tests.Planning;

/// <summary>Workflows, listings and image digests for planning tests.</summary>
internal static class PlanFixtures
{
    public const string Image = "tools/stats:1";

    public const string Sheet = "s3://in-bucket/samples.csv";

    public static IReadOnlyDictionary<string, string> Digests { get; } =
        new Dictionary<string, string> { [Image] = "sha256:1111" };

    /// <summary>A one-step workflow; <paramref name="input"/> and <paramref name="step"/> are extra lines, indented as in the file.</summary>
    public static Workflow Flow(string input = "", string command = """["stats", "{inputs}"]""", string step = "") =>
        WorkflowText.Parse($"""
            version: 1
            name: plan
            input:
              uri: s3://in-bucket/data/
            {input}
            steps:
              - name: stats
                image: {Image}
                command: {command}
            {step}
            output:
              uri: s3://out-bucket/results/
            """);

    public static Workflow SheetFlow(string command = """["stats", "--sample", "{sample}", "{inputs}"]""") =>
        Flow("  samplesheet: " + Sheet, command);

    public static InputFile File(string key, string? hash = null) => new(key, 100, hash ?? "etag-" + key);

    public static IReadOnlyList<InputFile> Files(params string[] keys) => keys.Select(k => File(k)).ToList();

    public static Plan Plan(Workflow workflow, IReadOnlyList<InputFile> listing, string? sheet = null) =>
        Planner.Plan(workflow, listing, sheet, Digests);

    public static IEnumerable<string[]> Keys(Plan plan) => plan.Tasks.Select(t => t.Inputs.Select(i => i.Key).ToArray());
}
