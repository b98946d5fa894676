using System.Text.Json;
using System.Text.Json.Nodes;
using Pipelines.Model;
using Pipelines.Runs;
using Pipelines.RunStore;

namespace Pipelines.Gather;

/// <summary>
/// The run as a Workflow Run RO-Crate (https://w3id.org/ro/wfrun/workflow/0.5): the workflow
/// file, one CreateAction for the run and one per task attempt step, with their inputs and results.
/// </summary>
public static class RoCrate
{
    public static byte[] Build(RunRecord run, Workflow workflow, IReadOnlyList<TaskRecord> tasks, IReadOnlyList<ProvenanceRow> provenance, IReadOnlyList<string> resultKeys, RunState state, DateTimeOffset finished)
    {
        var graph = new JsonArray();
        var rootParts = new JsonArray(Id(RunLayout.WorkflowYaml), Id(RunLayout.ProvenanceTasks));
        foreach (var k in resultKeys)
        {
            rootParts.Add(Id(k));
        }

        graph.Add(new JsonObject
        {
            ["@id"] = "ro-crate-metadata.json",
            ["@type"] = "CreativeWork",
            ["conformsTo"] = new JsonArray(Id("https://w3id.org/ro/crate/1.1"), Id("https://w3id.org/ro/wfrun/workflow/0.5")),
            ["about"] = Id("./"),
        });
        graph.Add(new JsonObject
        {
            ["@id"] = "./",
            ["@type"] = "Dataset",
            ["name"] = $"{workflow.Name} run {run.RunId}",
            ["datePublished"] = finished.UtcDateTime.ToString("O"),
            ["conformsTo"] = new JsonArray(Id("https://w3id.org/ro/wfrun/process/0.5"), Id("https://w3id.org/ro/wfrun/workflow/0.5")),
            ["mainEntity"] = Id(RunLayout.WorkflowYaml),
            ["hasPart"] = rootParts,
            ["mentions"] = new JsonArray(Id("#run-" + run.RunId)),
        });
        graph.Add(new JsonObject
        {
            ["@id"] = RunLayout.WorkflowYaml,
            ["@type"] = new JsonArray("File", "SoftwareSourceCode", "ComputationalWorkflow"),
            ["name"] = workflow.Name,
            ["description"] = workflow.Description,
            ["programmingLanguage"] = Id("#pipelines"),
        });
        graph.Add(new JsonObject
        {
            ["@id"] = "#pipelines",
            ["@type"] = "ComputerLanguage",
            ["name"] = "Pipelines workflow",
            ["version"] = "1",
        });
        var runResults = new JsonArray();
        foreach (var k in resultKeys)
        {
            runResults.Add(Id(k));
            graph.Add(new JsonObject { ["@id"] = k, ["@type"] = "File", ["encodingFormat"] = k.EndsWith(".csv", StringComparison.Ordinal) ? "text/csv" : "application/vnd.apache.parquet" });
        }

        graph.Add(new JsonObject { ["@id"] = RunLayout.ProvenanceTasks, ["@type"] = "File", ["encodingFormat"] = "application/vnd.apache.parquet", ["description"] = "one row per task attempt step" });
        var inputs = new JsonArray();
        foreach (var key in tasks.SelectMany(t => t.Inputs).Select(i => i.Key).Distinct().Order(StringComparer.Ordinal))
        {
            inputs.Add(Id(workflow.Input.Uri.TrimEnd('/') + "/" + key));
        }

        graph.Add(new JsonObject
        {
            ["@id"] = "#run-" + run.RunId,
            ["@type"] = "CreateAction",
            ["name"] = $"Run {run.RunId} of {workflow.Name}",
            ["instrument"] = Id(RunLayout.WorkflowYaml),
            ["startTime"] = run.CreatedAt.UtcDateTime.ToString("O"),
            ["endTime"] = finished.UtcDateTime.ToString("O"),
            ["actionStatus"] = state == RunState.Succeeded ? "CompletedActionStatus" : "FailedActionStatus",
            ["object"] = inputs,
            ["result"] = runResults,
        });
        foreach (var image in provenance.Select(p => (p.Image, p.ImageDigest)).Distinct())
        {
            graph.Add(new JsonObject
            {
                ["@id"] = "#image-" + image.ImageDigest,
                ["@type"] = "SoftwareApplication",
                ["name"] = image.Image,
                ["identifier"] = image.ImageDigest,
            });
        }

        var crate = new JsonObject { ["@context"] = "https://w3id.org/ro/crate/1.1/context", ["@graph"] = graph };
        return JsonSerializer.SerializeToUtf8Bytes(crate, new JsonSerializerOptions { WriteIndented = true });
    }

    private static JsonObject Id(string id) => new() { ["@id"] = id };
}
