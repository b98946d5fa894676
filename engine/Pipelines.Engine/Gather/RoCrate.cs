using System.Text.Json;
using Pipelines.Containers;
using Pipelines.Model;
using Pipelines.Runs;
using Pipelines.RunStore;

namespace Pipelines.Gather;

/// <summary>
/// The run as a Provenance Run Crate (https://w3id.org/ro/wfrun/provenance/0.5, which includes
/// the Workflow and Process Run Crate profiles): the workflow file as a ComputationalWorkflow
/// with a HowToStep per step; the engine's run as an OrganizeAction with the engine as its
/// instrument and agent; the workflow's run as a CreateAction; per step a ControlAction; and per
/// task attempt step a CreateAction with its tool (instrument), input files (object), output
/// files (result), times, actionStatus and the container image with its digest. Ids of the run
/// folder's files are relative to the run folder. Written as a stream: one entity at a time.
/// </summary>
internal static class RoCrate
{
    public const string ProvenanceProfile = "https://w3id.org/ro/wfrun/provenance/0.5";
    public const string WorkflowProfile = "https://w3id.org/ro/wfrun/workflow/0.5";
    public const string ProcessProfile = "https://w3id.org/ro/wfrun/process/0.5";
    public const string WorkflowRoCrate = "https://w3id.org/workflowhub/workflow-ro-crate/1.0";
    public const string EngineId = "#pipelines-engine";

    // The writer holds what it has written until it is flushed: past this, it goes to the stream.
    private const int FlushBytes = 64 * 1024;

    /// <summary>
    /// Writes the crate to <paramref name="output"/>. The provenance is read as a stream, a few
    /// times over (<paramref name="provenance"/> starts a new read each time: images, each step's
    /// actions, the attempts, the files), so the rows are never all in memory.
    /// </summary>
    public static async Task WriteAsync(Stream output, RunRecord run, Workflow workflow, IReadOnlyDictionary<string, string> imageDigests, IReadOnlyList<TaskRecord> tasks, Func<IAsyncEnumerable<ProvenanceRow>> provenance, IReadOnlyList<string> resultKeys, RunState state, DateTimeOffset finished, CancellationToken cancellationToken)
    {
        await using var w = new Utf8JsonWriter(output, new JsonWriterOptions { Indented = true });
        w.WriteStartObject();
        w.WriteStartArray("@context");
        w.WriteStringValue("https://w3id.org/ro/crate/1.1/context");
        w.WriteStringValue("https://w3id.org/ro/terms/workflow-run/context");
        w.WriteEndArray();
        w.WriteStartArray("@graph");

        Entity(w, "ro-crate-metadata.json", "CreativeWork", () =>
        {
            Ids(w, "conformsTo", ["https://w3id.org/ro/crate/1.1", WorkflowRoCrate]);
            Ref(w, "about", "./");
        });

        var runAction = "#run-" + run.RunId;
        var organize = "#organize-" + run.RunId;
        var rootParts = new List<string> { RunLayout.WorkflowYaml, RunLayout.ProvenanceTasks, RunLayout.RunJson, RunLayout.Report };
        rootParts.AddRange(resultKeys);
        Entity(w, "./", "Dataset", () =>
        {
            w.WriteString("name", $"{workflow.Name} run {run.RunId}");
            w.WriteString("description", $"Run {run.RunId} of the Pipelines workflow {workflow.Name}: {state.Name()}");
            w.WriteString("datePublished", Time(finished));
            w.WriteString("license", "https://spdx.org/licenses/CC0-1.0");
            Ids(w, "conformsTo", [ProcessProfile, WorkflowProfile, ProvenanceProfile, WorkflowRoCrate]);
            Ref(w, "mainEntity", RunLayout.WorkflowYaml);
            Ids(w, "hasPart", rootParts);
            Ids(w, "mentions", [runAction, organize]);
        });
        foreach (var (id, name, version) in new[] { (ProcessProfile, "Process Run Crate", "0.5"), (WorkflowProfile, "Workflow Run Crate", "0.5"), (ProvenanceProfile, "Provenance Run Crate", "0.5"), (WorkflowRoCrate, "Workflow RO-Crate", "1.0") })
        {
            Entity(w, id, "CreativeWork", () =>
            {
                w.WriteString("name", name);
                w.WriteString("version", version);
            });
        }

        // The workflow and its steps: each step a HowToStep whose tool is a SoftwareApplication.
        Entity(w, RunLayout.WorkflowYaml, ["File", "SoftwareSourceCode", "ComputationalWorkflow", "HowTo"], () =>
        {
            w.WriteString("name", workflow.Name);
            if (workflow.Description is not null)
            {
                w.WriteString("description", workflow.Description);
            }

            w.WriteString("encodingFormat", "application/yaml");
            Ref(w, "programmingLanguage", "#pipelines-language");
            Ids(w, "step", workflow.Steps.Select(s => StepId(s.Name)));
            Ids(w, "hasPart", workflow.Steps.Select(s => ToolId(s.Name)));
        });
        Entity(w, "#pipelines-language", "ComputerLanguage", () =>
        {
            w.WriteString("name", "Pipelines workflow");
            w.WriteString("version", "1");
            w.WriteString("url", "https://w3id.org/ro/wfrun/provenance/0.5");
        });
        for (var i = 0; i < workflow.Steps.Count; i++)
        {
            var step = workflow.Steps[i];
            Entity(w, StepId(step.Name), "HowToStep", () =>
            {
                w.WriteString("name", step.Name);
                w.WriteString("position", i.ToString(System.Globalization.CultureInfo.InvariantCulture));
                Ref(w, "workExample", ToolId(step.Name));
            });
            Entity(w, ToolId(step.Name), "SoftwareApplication", () =>
            {
                w.WriteString("name", $"{step.Name}: {string.Join(' ', step.Command)}");
                Ref(w, "containerImage", ImageId(step.Image, imageDigests.GetValueOrDefault(step.Image, "")));
            });
        }

        Entity(w, EngineId, "SoftwareApplication", () =>
        {
            w.WriteString("name", "Pipelines");
            w.WriteString("version", EngineVersion.Current);
        });

        // Images: one ContainerImage per image and digest the run used.
        var images = imageDigests.Select(kv => (kv.Key, kv.Value)).ToList();
        var seen = images.ToHashSet();
        await foreach (var p in provenance().WithCancellation(cancellationToken).ConfigureAwait(false))
        {
            if (seen.Add((p.Image, p.ImageDigest)))
            {
                images.Add((p.Image, p.ImageDigest));
            }
        }

        foreach (var (image, digest) in images)
        {
            var reference = ImageReference.Parse(image);
            var (name, tag) = (reference.Repository, reference.Tag);
            Entity(w, ImageId(image, digest), "ContainerImage", () =>
            {
                Ref(w, "additionalType", "https://w3id.org/ro/terms/workflow-run#DockerImage");
                w.WriteString("name", name);
                if (tag is not null)
                {
                    w.WriteString("tag", tag);
                }

                w.WriteString("registry", reference.Registry ?? "docker.io");
                if (digest.StartsWith("sha256:", StringComparison.Ordinal))
                {
                    w.WriteString("sha256", digest["sha256:".Length..]);
                }

                w.WriteString("identifier", digest);
            });
        }

        // The engine's run, the workflow's run, and a ControlAction per step.
        Entity(w, organize, "OrganizeAction", () =>
        {
            w.WriteString("name", $"Pipelines orchestrating run {run.RunId}");
            Ref(w, "instrument", EngineId);
            Ref(w, "agent", EngineId);
            Ids(w, "object", workflow.Steps.Select(s => "#control-" + s.Name));
            Ref(w, "result", runAction);
            w.WriteString("startTime", Time(run.CreatedAt));
            w.WriteString("endTime", Time(finished));
            w.WriteString("actionStatus", Status(state));
        });
        var inputKeys = tasks.SelectMany(t => t.Inputs).Select(i => i.Key).Distinct().Order(StringComparer.Ordinal).ToList();
        Entity(w, runAction, "CreateAction", () =>
        {
            w.WriteString("name", $"Run {run.RunId} of {workflow.Name}");
            Ref(w, "instrument", RunLayout.WorkflowYaml);
            Ref(w, "agent", EngineId);
            w.WriteString("startTime", Time(run.CreatedAt));
            w.WriteString("endTime", Time(finished));
            w.WriteString("actionStatus", Status(state));
            Ids(w, "object", inputKeys.Select(k => InputId(workflow, k)));
            Ids(w, "result", resultKeys);
        });
        foreach (var step in workflow.Steps)
        {
            // A step's actions: one read of the rows per step, rather than every action id held.
            Begin(w, "#control-" + step.Name, ["ControlAction"]);
            w.WriteString("name", $"orchestrate step {step.Name}");
            Ref(w, "instrument", StepId(step.Name));
            w.WriteStartArray("object");
            await foreach (var p in provenance().WithCancellation(cancellationToken).ConfigureAwait(false))
            {
                if (string.Equals(p.Step, step.Name, StringComparison.Ordinal))
                {
                    w.WriteStartObject();
                    w.WriteString("@id", ActionId(p));
                    w.WriteEndObject();
                    await FlushFullAsync(w, cancellationToken).ConfigureAwait(false);
                }
            }

            w.WriteEndArray();
            w.WriteEndObject();
        }

        // Each task attempt step: a CreateAction with its tool, image, inputs, outputs and times.
        await foreach (var p in provenance().WithCancellation(cancellationToken).ConfigureAwait(false))
        {
            Entity(w, ActionId(p), "CreateAction", () =>
            {
                w.WriteString("name", $"task {p.TaskIndex} ({p.TaskId}) step {p.Step} attempt {p.Attempt}");
                Ref(w, "instrument", ToolId(p.Step));
                Ref(w, "containerImage", ImageId(p.Image, p.ImageDigest));
                Ref(w, "agent", EngineId);
                w.WriteString("startTime", Time(p.StartedAt));
                w.WriteString("endTime", Time(p.FinishedAt));
                w.WriteString("actionStatus", p.Status is "succeeded" or "cached" ? "CompletedActionStatus" : "FailedActionStatus");
                if (p.Error is not null)
                {
                    w.WriteString("error", p.Error);
                }

                if (p.CachedFrom is not null)
                {
                    w.WriteString("description", $"cached: reused from run {p.CachedFrom}");
                }

                w.WriteString("identifier", p.TaskId);
                Ids(w, "object", p.Inputs.Select(i => IsRunKey(i.Key) ? i.Key : InputId(workflow, i.Key)));
                Ids(w, "result", p.Outputs.Select(o => o.Key));
            });
            await FlushFullAsync(w, cancellationToken).ConfigureAwait(false);
        }

        // The files: inputs (by their URI), outputs, logs, results and provenance (in the run folder).
        var written = new HashSet<string>(StringComparer.Ordinal);
        await foreach (var p in provenance().WithCancellation(cancellationToken).ConfigureAwait(false))
        {
            await FlushFullAsync(w, cancellationToken).ConfigureAwait(false);
            foreach (var f in p.Inputs)
            {
                FileEntity(w, written, IsRunKey(f.Key) ? f.Key : InputId(workflow, f.Key), f.Size, f.Sha256, null);
            }

            foreach (var f in p.Outputs)
            {
                FileEntity(w, written, f.Key, f.Size, f.Sha256, null);
            }
        }

        foreach (var key in inputKeys)
        {
            FileEntity(w, written, InputId(workflow, key), null, null, null);
        }

        foreach (var k in resultKeys)
        {
            FileEntity(w, written, k, null, null, k.EndsWith(".csv", StringComparison.Ordinal) ? "text/csv" : "application/vnd.apache.parquet");
        }

        FileEntity(w, written, RunLayout.ProvenanceTasks, null, null, "application/vnd.apache.parquet");
        FileEntity(w, written, RunLayout.RunJson, null, null, "application/json");
        FileEntity(w, written, RunLayout.Report, null, null, "text/html");
        w.WriteEndArray();
        w.WriteEndObject();
        await w.FlushAsync(cancellationToken).ConfigureAwait(false);
    }

    private static async ValueTask FlushFullAsync(Utf8JsonWriter w, CancellationToken ct)
    {
        if (w.BytesPending >= FlushBytes)
        {
            await w.FlushAsync(ct).ConfigureAwait(false);
        }
    }

    /// <summary>The id of a task attempt step's CreateAction.</summary>
    public static string ActionId(ProvenanceRow p) => $"#task-{p.TaskId}-{p.Step}-{p.Attempt}";

    public static string StepId(string step) => "#step-" + step;

    public static string ToolId(string step) => "#tool-" + step;

    public static string ImageId(string image, string digest) => "#image-" + (digest.Length > 0 ? digest : image);

    private static bool IsRunKey(string key) => key.StartsWith("tasks/", StringComparison.Ordinal);

    private static string InputId(Workflow workflow, string key)
    {
        var root = workflow.Input.Uri.TrimEnd('/') + "/" + key;
        return root.StartsWith('/') ? "file://" + root : root;
    }


    private static void FileEntity(Utf8JsonWriter w, HashSet<string> written, string id, long? size, string? sha256, string? format)
    {
        if (!written.Add(id))
        {
            return;
        }

        Entity(w, id, "File", () =>
        {
            if (size is { } s)
            {
                w.WriteString("contentSize", s.ToString(System.Globalization.CultureInfo.InvariantCulture));
            }

            if (!string.IsNullOrEmpty(sha256))
            {
                w.WriteString("sha256", sha256);
            }

            if (format is not null)
            {
                w.WriteString("encodingFormat", format);
            }
        });
    }

    private static string Status(RunState state) => state == RunState.Succeeded ? "CompletedActionStatus" : "FailedActionStatus";

    private static string Time(DateTimeOffset t) => t.UtcDateTime.ToString("O", System.Globalization.CultureInfo.InvariantCulture);

    private static string Time(DateTime t) => DateTime.SpecifyKind(t, DateTimeKind.Utc).ToString("O", System.Globalization.CultureInfo.InvariantCulture);

    private static void Entity(Utf8JsonWriter w, string id, string type, Action body) => Entity(w, id, [type], body);

    private static void Entity(Utf8JsonWriter w, string id, string[] types, Action body)
    {
        Begin(w, id, types);
        body();
        w.WriteEndObject();
    }

    /// <summary>Opens an entity with its id and types; the caller writes the rest and closes it.</summary>
    private static void Begin(Utf8JsonWriter w, string id, string[] types)
    {
        w.WriteStartObject();
        w.WriteString("@id", id);
        if (types.Length == 1)
        {
            w.WriteString("@type", types[0]);
        }
        else
        {
            w.WriteStartArray("@type");
            foreach (var t in types)
            {
                w.WriteStringValue(t);
            }

            w.WriteEndArray();
        }
    }

    private static void Ref(Utf8JsonWriter w, string name, string id)
    {
        w.WriteStartObject(name);
        w.WriteString("@id", id);
        w.WriteEndObject();
    }

    private static void Ids(Utf8JsonWriter w, string name, IEnumerable<string> ids)
    {
        w.WriteStartArray(name);
        foreach (var id in ids)
        {
            w.WriteStartObject();
            w.WriteString("@id", id);
            w.WriteEndObject();
        }

        w.WriteEndArray();
    }
}
