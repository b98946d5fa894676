using System.Text.Json;

namespace Pipelines.Tests.Lineage;

/// <summary>The RO-Crate of a real run holds the entities the Provenance Run Crate profile 0.5 requires.</summary>
[Collection(LineageCollection.Name)]
[Integration]
public sealed class ProvenanceCrateTests(LineageRunFixture fixture)
{
    [Fact]
    public async Task The_crate_conforms_to_the_Provenance_Run_Crate_profile_with_steps_actions_images_and_the_engine()
    {
        using var crate = JsonDocument.Parse(await fixture.Run.ReadAsync("provenance/ro-crate-metadata.json"));
        var provenance = await fixture.Run.ProvenanceAsync();
        var graph = crate.RootElement.GetProperty("@graph").EnumerateArray().ToDictionary(e => e.GetProperty("@id").GetString()!);
        JsonElement Entity(string id) => Assert.Contains(id, (IDictionary<string, JsonElement>)graph);
        JsonElement Ref(JsonElement e, string property) => Entity(e.GetProperty(property).GetProperty("@id").GetString()!);
        IEnumerable<JsonElement> Refs(JsonElement e, string property) => e.GetProperty(property).EnumerateArray().Select(r => Entity(r.GetProperty("@id").GetString()!));
        static IEnumerable<string> Types(JsonElement e) => e.GetProperty("@type").ValueKind == JsonValueKind.Array ? e.GetProperty("@type").EnumerateArray().Select(t => t.GetString()!) : [e.GetProperty("@type").GetString()!];

        // The profiles: said by the root data entity, each a contextual entity of the crate.
        var root = Entity("./");
        var profiles = root.GetProperty("conformsTo").EnumerateArray().Select(p => p.GetProperty("@id").GetString()).ToList();
        Assert.Contains("https://w3id.org/ro/wfrun/provenance/0.5", profiles);
        Assert.Contains("https://w3id.org/ro/wfrun/workflow/0.5", profiles);
        Assert.Contains("https://w3id.org/ro/wfrun/process/0.5", profiles);
        Assert.All(profiles, p => Assert.Equal("CreativeWork", Entity(p!).GetProperty("@type").GetString()));
        Assert.Contains("https://w3id.org/ro/terms/workflow-run/context", crate.RootElement.GetProperty("@context").EnumerateArray().Select(c => c.GetString()));

        // The workflow: a ComputationalWorkflow and HowTo whose steps are HowToSteps with a tool each.
        var workflow = Ref(root, "mainEntity");
        Assert.Superset(new HashSet<string> { "File", "SoftwareSourceCode", "ComputationalWorkflow", "HowTo" }, Types(workflow).ToHashSet());
        var steps = Refs(workflow, "step").ToList();
        var step = Assert.Single(steps);
        Assert.Equal("HowToStep", step.GetProperty("@type").GetString());
        Assert.Equal("stats", step.GetProperty("name").GetString());
        var tool = Ref(step, "workExample");
        Assert.Equal("SoftwareApplication", tool.GetProperty("@type").GetString());

        // The engine's run: an OrganizeAction with the engine as instrument and agent, ControlActions as object, the workflow run as result.
        var organize = Assert.Single(graph.Values, e => Types(e).Contains("OrganizeAction"));
        var engine = Ref(organize, "instrument");
        Assert.Equal("SoftwareApplication", engine.GetProperty("@type").GetString());
        Assert.Equal("Pipelines", engine.GetProperty("name").GetString());
        Assert.Equal(engine.GetProperty("@id").GetString(), Ref(organize, "agent").GetProperty("@id").GetString());
        var runAction = Ref(organize, "result");
        Assert.Equal("CreateAction", runAction.GetProperty("@type").GetString());
        Assert.Equal(workflow.GetProperty("@id").GetString(), Ref(runAction, "instrument").GetProperty("@id").GetString());
        Assert.Equal("CompletedActionStatus", runAction.GetProperty("actionStatus").GetString());
        Assert.Equal(200, runAction.GetProperty("object").GetArrayLength());
        var control = Assert.Single(Refs(organize, "object"));
        Assert.Equal("ControlAction", control.GetProperty("@type").GetString());
        Assert.Equal(step.GetProperty("@id").GetString(), Ref(control, "instrument").GetProperty("@id").GetString());

        // Each task attempt step: a CreateAction with tool, inputs, outputs, times, status and the image with its digest.
        var actions = Refs(control, "object").ToList();
        Assert.Equal(provenance.Count, actions.Count);
        foreach (var p in provenance)
        {
            var action = Assert.Single(actions, a => a.GetProperty("identifier").GetString() == p.TaskId);
            Assert.Equal("CreateAction", action.GetProperty("@type").GetString());
            Assert.Equal(tool.GetProperty("@id").GetString(), Ref(action, "instrument").GetProperty("@id").GetString());
            Assert.Equal(p.Inputs.Count, Refs(action, "object").Count(f => f.GetProperty("@type").GetString() == "File" && f.TryGetProperty("sha256", out _)));
            var result = Assert.Single(Refs(action, "result"));
            Assert.Equal(p.Outputs.Single().Key, result.GetProperty("@id").GetString());
            Assert.Equal(p.Outputs.Single().Sha256, result.GetProperty("sha256").GetString());
            Assert.Equal(p.StartedAt, action.GetProperty("startTime").GetDateTime().ToUniversalTime(), TimeSpan.FromMilliseconds(1));
            Assert.Equal(p.FinishedAt, action.GetProperty("endTime").GetDateTime().ToUniversalTime(), TimeSpan.FromMilliseconds(1));
            Assert.Equal("CompletedActionStatus", action.GetProperty("actionStatus").GetString());
            var image = Ref(action, "containerImage");
            Assert.Equal("ContainerImage", image.GetProperty("@type").GetString());
            Assert.Equal("https://w3id.org/ro/terms/workflow-run#DockerImage", image.GetProperty("additionalType").GetProperty("@id").GetString());
            Assert.Equal("pipelines-samples/fastq-stats", image.GetProperty("name").GetString());
            Assert.Equal("1", image.GetProperty("tag").GetString());
            Assert.Equal("sha256:" + image.GetProperty("sha256").GetString(), p.ImageDigest);
        }

        Assert.Equal("ContainerImage", Ref(tool, "containerImage").GetProperty("@type").GetString());
    }
}
