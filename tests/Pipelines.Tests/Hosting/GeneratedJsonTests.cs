using System.Collections.Immutable;
using System.Reflection;
using System.Reflection.Emit;
using System.Reflection.Metadata;
using System.Reflection.Metadata.Ecma335;
using System.Reflection.PortableExecutable;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;
using Pipelines.Canary;
using Pipelines.Cli;
using Pipelines.Explain;
using Pipelines.Gather;
using Pipelines.Harvest;
using Pipelines.Model;
using Pipelines.Planning;
using Pipelines.Queue;
using Pipelines.Runs;
using Pipelines.RunStore;
using Pipelines.Server.Api;
using Pipelines.Tenancy;
using Pipelines.Tests.Model;
using Pipelines.Tests.Support;
using Pipelines.Usage;
using Pipelines.Worker;

namespace Pipelines.Tests.Hosting;

/// <summary>
/// What a run serializes goes through metadata made at build time (a JsonSerializerContext per
/// part), not reflection: reflection-made converters are code the ReadyToRun compiler cannot see,
/// so a short-lived `pipelines run` JITs them (docs/benchmarks.md, "Source-generated JSON"). The
/// JSON stays what the reflection options wrote, byte for byte, and what older builds wrote reads.
/// </summary>
[Unit]
public sealed class GeneratedJsonTests
{
    /// <summary>
    /// The types whose code still calls a reflection-based serializer overload, each with why: one
    /// list, a ratchet (a type that no longer does fails the test, so the list only shrinks). None is
    /// on the path of a run's task.
    /// </summary>
    internal static readonly Dictionary<string, string> KeptReflection = new(StringComparer.Ordinal)
    {
        ["Pipelines.Server.Health.HealthEndpoints"] = "an anonymous type (the health document), once per probe (not converted yet)",
        ["Pipelines.Server.Api.WorkflowBody"] = "the submit body, through the server's JSON options, whose resolver chain starts with ServerJson (generated)",
        ["Pipelines.Cli.JsonOut"] = "truly dynamic: any command's document by its runtime type (document.GetType()), once per command",
        ["Pipelines.Cli.Commands.ExplainCommand"] = "`explain --json`, once per command (not converted yet)",
        ["Pipelines.Functions.FunctionSpec"] = "a function's stored definition (snake_case enums), read when a function is deployed or loaded, not a run's path (not converted yet)",
        ["Pipelines.Canary.CanaryDiff"] = "a canary's diff.json, once per canary (not converted yet)",
        ["Pipelines.Lineage.LineageAnswer"] = "`lineage --json`, once per question (not converted yet)",
    };

    private static readonly string[] Assemblies = ["Pipelines.Engine", "Pipelines.Server", "pipelines"];

    private static readonly JsonSerializerOptions Defaults = new() { TypeInfoResolver = new DefaultJsonTypeInfoResolver() };

    [Fact]
    public void Every_serializer_call_uses_metadata_made_at_build_time_or_is_listed_with_why()
    {
        var callers = Assemblies.SelectMany(a => ReflectionCallers(Path.Combine(AppContext.BaseDirectory, a + ".dll"))).ToHashSet(StringComparer.Ordinal);

        var unlisted = callers.Where(c => !KeptReflection.ContainsKey(c)).Order(StringComparer.Ordinal).ToList();
        var gone = KeptReflection.Keys.Where(k => !callers.Contains(k)).Order(StringComparer.Ordinal).ToList();
        Assert.True(unlisted.Count == 0, "types that serialize JSON by reflection (pass a JsonTypeInfo of a JsonSerializerContext of their part): " + string.Join(", ", unlisted));
        Assert.True(gone.Count == 0, "no longer serialize by reflection: take them off KeptReflection: " + string.Join(", ", gone));
    }

    [Fact]
    public void The_scan_finds_a_reflection_call_and_passes_one_with_generated_metadata()
    {
        var callers = ReflectionCallers(typeof(GeneratedJsonTests).Assembly.Location);

        Assert.Contains(typeof(JsonScanByReflection).FullName!, callers);
        Assert.DoesNotContain(typeof(JsonScanByMetadata).FullName!, callers);
    }

    [Fact]
    public void The_run_definition_is_written_as_by_reflection_with_enums_as_names_and_reads_back()
    {
        var text = File.ReadAllText(Path.Combine(TestEnvironment.RepoRoot, "docs", "workflow-spec.md"));
        var start = text.IndexOf("```yaml\n", StringComparison.Ordinal) + "```yaml\n".Length;
        var workflow = WorkflowParser.Parse(text[start..text.IndexOf("```", start, StringComparison.Ordinal)], "spec example", "/work/flows");
        var definition = new RunDefinition(workflow with { OnError = OnError.Fail }, new Dictionary<string, string> { ["img:1"] = "sha256:ab" })
        {
            Canary = new CanaryLink(CanaryRole.Candidate, "20261207-1", "20261207-2", "stats", "img:1", "img:2", "sample", 0.01),
            TraceParent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        };

        var json = definition.ToJson();

        Assert.Equal(JsonSerializer.Serialize(definition, new JsonSerializerOptions(Defaults) { Converters = { new JsonStringEnumConverter() } }), json);
        Assert.Contains("\"OnError\":\"Fail\"", json, StringComparison.Ordinal);
        Assert.Contains("\"Role\":\"Candidate\"", json, StringComparison.Ordinal);
        Assert.Equal(json, RunDefinition.FromJson(json).ToJson());
        Assert.True(RunDefinition.FromJson(json).Workflow.Steps[0].Reuse);
    }

    [Fact]
    public void Provenance_rows_usage_records_and_why_a_task_ran_are_written_as_by_reflection()
    {
        var row = Row();
        Same(row, RunStoreJson.Default.ProvenanceRow, Defaults);
        Same(new ProvenanceRow(), RunStoreJson.Default.ProvenanceRow, Defaults);
        IReadOnlyList<InputFile> inputs = [new("a/b.fastq", 12, "sha256:1"), new("ü<&>.fastq", 0, "")];
        Same(inputs, RunStoreJson.Default.IReadOnlyListInputFile, Defaults);
        Same(inputs.ToList(), RunStoreJson.Default.ListInputFile, Defaults);
        IReadOnlyDictionary<string, string> captures = new Dictionary<string, string> { ["sample"] = "S1", ["lane"] = "\"2\"" };
        Same(captures, RunStoreJson.Default.IReadOnlyDictionaryStringString, Defaults);

        Same(
            new UsageRecord("r/0/1", TenantId.Default, UsageKinds.Task, DateTimeOffset.UnixEpoch, DateTimeOffset.UnixEpoch.AddSeconds(4.25), UsageOutcomes.Vacated)
            {
                RunId = "r",
                TaskIndex = 0,
                Delivery = 1,
                Worker = "w1",
                WallSeconds = 4.25,
                CpuSeconds = 1.5,
                PeakMemoryBytes = 1 << 20,
                Harvested = true,
                BytesIn = 5,
                BytesOut = 7,
            },
            UsageJson.Default.UsageRecord,
            Defaults);
        Same(new UsageRecord("f/1", TenantId.Default, UsageKinds.Invocation, DateTimeOffset.UnixEpoch, DateTimeOffset.UnixEpoch, UsageOutcomes.Succeeded) { Function = "f", Version = 2, Route = "canary" }, UsageJson.Default.UsageRecord, Defaults);

        var nulls = new JsonSerializerOptions(Defaults) { DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull };
        var because = new RanBecause(RanBecause.Changed, null, "run1", "task1", [new IdentityChange("inputs[3]", "sha256:5e1a", "sha256:9c0b", "b.fastq"), new IdentityChange("steps[0].env.LC_ALL", null, "C")]);
        Assert.Equal(JsonSerializer.Serialize(because, nulls), because.ToJson());
        Assert.Equal(JsonSerializer.Serialize(new RanBecause(RanBecause.NoEarlierRun), nulls), new RanBecause(RanBecause.NoEarlierRun).ToJson());
        Assert.Equal(because.ToJson(), RanBecause.FromJson(because.ToJson())!.ToJson());
    }

    [Fact]
    public void Cache_and_unit_entries_run_json_and_the_boards_are_written_as_by_reflection()
    {
        var workflow = WorkflowText.Parse(WorkflowText.Minimal);
        var inputs = new List<InputFile> { new("a.fastq", 3, "sha256:aa") };
        var identity = Planner.Identity(workflow, new Dictionary<string, string> { [workflow.Steps[0].Image] = "sha256:ff" }, inputs, new Dictionary<string, string> { ["s"] = "1" });
        Same(new CacheManifest("run1", identity.TaskId, [Row(), new ProvenanceRow()]) { Identity = identity }, WorkerJson.Default.CacheManifest, Defaults);
        Same(new CacheManifest("run1", "t", []), WorkerJson.Default.CacheManifest, Defaults);
        Same(new UnitEntry("wf", "run1", "t"), WorkerJson.Default.UnitEntry, Defaults);
        Same(new List<ProvenanceRow> { Row() }, WorkerJson.Default.ListProvenanceRow, Defaults);

        var summary = new RunSummary
        {
            RunId = "20261201-094547-086301",
            Workflow = "w",
            Status = "failed",
            Error = "ünïcode & <html>",
            Counts = new RunSummaryCounts(3, 2, 1, 0, 0, 1, 7),
            Results = new Dictionary<string, RunSummaryTable> { ["table"] = new(12, ["results/table.parquet"]) },
            Problems = ["p"],
            Warnings = [],
            CreatedAt = new DateTimeOffset(2026, 12, 1, 9, 45, 47, TimeSpan.Zero),
            FinishedAt = new DateTimeOffset(2026, 12, 1, 11, 45, 48, 618, TimeSpan.FromHours(2)),
            DurationSeconds = 1.618,
            InputUri = "s3://bucket/in/",
            OutputUri = "s3://bucket/out/",
            Images = new Dictionary<string, string> { ["img:1"] = "sha256:e1c0" },
            Engine = new RunSummaryEngine("pipelines", "0.1.0"),
            TraceId = "0af7651916cd43dd8448eb211c80319c",
        };
        Assert.Equal(JsonSerializer.SerializeToUtf8Bytes(summary, new JsonSerializerOptions(Defaults) { WriteIndented = true }), summary.ToJson());

        Same(new WorkerOffer(3, "memory", "2 GiB free", DateTimeOffset.UnixEpoch.AddTicks(12345)), QueueJson.Default.WorkerOffer, Defaults);
        var sample = new OwnerSample(DateTimeOffset.UnixEpoch, 2, 0.5, 0.25, 8L << 30, 4L << 30, 1L << 30) { OwnerCgroupCpu = 0.1 };
        Same(new HarvestStatus("idle", false, "suspend", sample, 2, 1, 0, 3, 4, 12.5, [new HarvestPoint(DateTimeOffset.UnixEpoch, 0.5, 0.25, 1 << 30, 2, 0, 1)]), HarvestJson.Default.HarvestStatus, Defaults);
        var counts = new TaskCounts(1, 2, 3, 4, 5, 6) { Split = 7, HeldBecause = new Dictionary<string, int> { ["memory"] = 1 } };
        Same(new RunIndex.Live(42, 1234567, "running", counts, DateTimeOffset.UnixEpoch), CliJson.Default.Live, Defaults);

        IReadOnlyList<string> strings = ["**/*.fastq", "ü<&>\"", ""];
        Same(strings, Pipelines.Triggers.TriggersJson.Default.IReadOnlyListString, Defaults);
        Same(strings.ToList(), Pipelines.Triggers.TriggersJson.Default.ListString, Defaults);
        Same(strings, Pipelines.Algorithms.AlgorithmsJson.Default.IReadOnlyListString, Defaults);
        Same(new Pipelines.Functions.FunctionService.QueuedInput(["a.bin", "b"], null, "sha256:ab", 12), Pipelines.Functions.FunctionsJson.Default.QueuedInput, Defaults);
    }

    [Fact]
    public void A_cache_entry_a_unit_entry_and_a_run_json_written_by_the_reflection_build_read_and_write_back_byte_for_byte()
    {
        // Written by `pipelines run` of main at 2e40b9f (reflection), bench/workflows/fastq-stats.yaml over two files.
        var folder = Path.Combine(TestEnvironment.RepoRoot, "tests", "Pipelines.Tests", "Hosting", "GeneratedJson");
        var manifest = File.ReadAllBytes(Path.Combine(folder, "cache-entry.json"));
        Assert.Equal(manifest, JsonSerializer.SerializeToUtf8Bytes(JsonSerializer.Deserialize(manifest, WorkerJson.Default.CacheManifest)!, WorkerJson.Default.CacheManifest));
        Assert.NotNull(JsonSerializer.Deserialize(manifest, WorkerJson.Default.CacheManifest)!.Identity);
        var unit = File.ReadAllBytes(Path.Combine(folder, "unit-entry.json"));
        Assert.Equal(unit, JsonSerializer.SerializeToUtf8Bytes(JsonSerializer.Deserialize(unit, WorkerJson.Default.UnitEntry)!, WorkerJson.Default.UnitEntry));
        var run = File.ReadAllBytes(Path.Combine(folder, "run.json"));
        Assert.Equal(run, RunSummary.FromJson(run).ToJson());
    }

    [Fact]
    public void The_run_api_writes_its_views_as_by_reflection_and_the_cli_reads_them_back()
    {
        // The server's options (PipelinesServer) with the generated context first, against the same options by reflection.
        JsonSerializerOptions Server(IJsonTypeInfoResolver resolver) => new(JsonSerializerDefaults.Web)
        {
            Converters = { new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower) },
            DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
            TypeInfoResolver = resolver,
        };
        var generated = Server(ServerJson.Default);
        var reflection = Server(new DefaultJsonTypeInfoResolver());

        // The CLI's options (ServerClient): the generated context alone.
        var client = new JsonSerializerOptions(JsonSerializerDefaults.Web) { Converters = { new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower) }, TypeInfoResolver = ServerClientJson.Default };

        var usage = RunUsage.Of(
            [new UsageRecord("r/0/1", TenantId.Default, UsageKinds.Task, DateTimeOffset.UnixEpoch, DateTimeOffset.UnixEpoch.AddSeconds(4), UsageOutcomes.Vacated) { WallSeconds = 4, CpuSeconds = 1, Harvested = true }],
            new PriceSheet { Currency = "credits", CpuSecond = 1, GbSecond = 0.5, HarvestedDiscount = 0.5 });
        var counts = new CountsView(3, 1, 1, 1, 0, 0, 0, 0, 1, new Dictionary<string, int> { ["owner_load"] = 1 });
        var run = new RunView("r1", "w", RunState.Gathering, counts, DateTimeOffset.UnixEpoch, null, 1.5, "/out/r1/", null, "ü<&>", "/api/runs/r1", "/api/runs/r1/tasks", "/api/runs/r1/files/run.json", usage);
        var task = new TaskView(0, "t", TaskState.Queued, [new InputView("a.fastq", 3)], 0, null, null, null, null, null, new Dictionary<string, string> { ["stats"] = "/x" }, new TaskHold("owner_load", "busy", "w1", DateTimeOffset.UnixEpoch));
        var submitted = new SubmittedRunView("r1", "/api/runs/r1", "w", 3, 4, "/out/", ["a warning"]);
        var logs = new LogsView("r1", RunState.Running, [new LogView(0, "t", "succeeded", "stats", "/x")]);

        Assert.Equal(JsonSerializer.Serialize(run, reflection), JsonSerializer.Serialize(run, generated));
        Assert.Equal(JsonSerializer.Serialize(run with { Usage = null }, reflection), JsonSerializer.Serialize(run with { Usage = null }, generated));
        var page = new PageView<TaskView>([task], 1, 0, 50);
        Assert.Equal(JsonSerializer.Serialize(page, reflection), JsonSerializer.Serialize(page, generated));
        Assert.Equal(JsonSerializer.Serialize(submitted, reflection), JsonSerializer.Serialize(submitted, generated));
        Assert.Equal(JsonSerializer.Serialize(logs, reflection), JsonSerializer.Serialize(logs, generated));
        Assert.Contains("\"state\":\"gathering\"", JsonSerializer.Serialize(run, generated), StringComparison.Ordinal);

        Assert.Equal(JsonSerializer.Serialize(run, reflection), JsonSerializer.Serialize(JsonSerializer.Deserialize<RunView>(JsonSerializer.Serialize(run, generated), client), reflection));
        Assert.Equal(JsonSerializer.Serialize(page, reflection), JsonSerializer.Serialize(JsonSerializer.Deserialize<PageView<TaskView>>(JsonSerializer.Serialize(page, generated), client), reflection));
        Assert.Throws<NotSupportedException>(() => JsonSerializer.Serialize(new UnitEntry("w", "r", "t"), client));
    }

    private static ProvenanceRow Row() => new()
    {
        RunId = "run1",
        TaskId = "t1",
        TaskIndex = 3,
        Attempt = 2,
        Step = "stats",
        Status = "succeeded",
        ExitCode = 0,
        Image = "img:1",
        ImageDigest = "sha256:ff",
        Command = ["sh", "-c", "echo \"ü\" > /out/x <&>"],
        Inputs = [new FileRef { Key = "a.fastq", Size = 3, Sha256 = "aa" }],
        Outputs = [new FileRef { Key = "tasks/t1/stats/x", Size = 1, Sha256 = "bb" }],
        Log = "tasks/t1/stats.log",
        StartedAt = new DateTime(2026, 12, 7, 19, 0, 0, 123, DateTimeKind.Utc),
        FinishedAt = new DateTime(2026, 12, 7, 19, 0, 1, DateTimeKind.Utc).AddTicks(4567),
        Worker = "w1",
        Error = null,
        CachedFrom = "run0",
        RanBecause = new RanBecause(RanBecause.NoEarlierRun).ToJson(),
        CpuSeconds = 0.125,
        PeakMemoryBytes = 1 << 20,
        ReadBytes = 0,
        WrittenBytes = 4096,
        WallSeconds = 1.0000001,
        ImageLoadSeconds = 2.5,
        ImageLoad = "loaded from the algorithm store",
        TraceId = "0af7651916cd43dd8448eb211c80319c",
        SpanId = "b7ad6b7169203331",
    };

    /// <summary>The generated metadata writes what reflection with <paramref name="reflection"/> writes, and reads it back to the same bytes.</summary>
    private static void Same<T>(T value, JsonTypeInfo<T> generated, JsonSerializerOptions reflection)
    {
        var json = JsonSerializer.SerializeToUtf8Bytes(value, generated);
        Assert.Equal(Encoding.UTF8.GetString(JsonSerializer.SerializeToUtf8Bytes(value, reflection)), Encoding.UTF8.GetString(json));
        Assert.Equal(json, JsonSerializer.SerializeToUtf8Bytes(JsonSerializer.Deserialize(json, generated)!, generated));
    }

    /// <summary>
    /// The outermost types of the assembly at <paramref name="path"/> whose method bodies call a
    /// serializer overload that takes no JsonTypeInfo and no JsonSerializerContext: the ones that
    /// resolve metadata by reflection (System.Text.Json's JsonSerializer, System.Net.Http.Json, and
    /// ASP.NET Core's HttpRequest/HttpResponse JSON extensions).
    /// </summary>
    internal static HashSet<string> ReflectionCallers(string path)
    {
        using var pe = new PEReader(File.OpenRead(path));
        var md = pe.GetMetadataReader();
        var callers = new HashSet<string>(StringComparer.Ordinal);
        foreach (var handle in md.TypeDefinitions)
        {
            foreach (var m in md.GetTypeDefinition(handle).GetMethods())
            {
                var method = md.GetMethodDefinition(m);
                if (method.RelativeVirtualAddress != 0 && CallsByReflection(md, pe.GetMethodBody(method.RelativeVirtualAddress)))
                {
                    callers.Add(Outermost(md, handle));
                }
            }
        }

        return callers;
    }

    private static readonly HashSet<string> SerializerTypes = new(StringComparer.Ordinal)
    {
        "System.Text.Json.JsonSerializer",
        "System.Net.Http.Json.HttpClientJsonExtensions",
        "System.Net.Http.Json.HttpContentJsonExtensions",
        "System.Net.Http.Json.JsonContent",
        "Microsoft.AspNetCore.Http.HttpRequestJsonExtensions",
        "Microsoft.AspNetCore.Http.HttpResponseJsonExtensions",
    };

    private static bool CallsByReflection(MetadataReader md, MethodBodyBlock body)
    {
        var calls = false;
        TypeReferences.Tokens(body, (operand, token) => calls |= operand == OperandType.InlineMethod && IsReflectionOverload(md, token));
        return calls;
    }

    private static bool IsReflectionOverload(MetadataReader md, EntityHandle handle)
    {
        if (handle.Kind == HandleKind.MethodSpecification)
        {
            handle = md.GetMethodSpecification((MethodSpecificationHandle)handle).Method;
        }

        if (handle.Kind != HandleKind.MemberReference)
        {
            return false;
        }

        var member = md.GetMemberReference((MemberReferenceHandle)handle);
        if (member.Parent.Kind != HandleKind.TypeReference || member.GetKind() != MemberReferenceKind.Method)
        {
            return false;
        }

        var parent = md.GetTypeReference((TypeReferenceHandle)member.Parent);
        if (!SerializerTypes.Contains(md.GetString(parent.Namespace) + "." + md.GetString(parent.Name)))
        {
            return false;
        }

        var name = md.GetString(member.Name);
        if (!name.Contains("Serialize", StringComparison.Ordinal) && !name.Contains("Json", StringComparison.Ordinal) && name != "Create")
        {
            return false;
        }

        var parameters = member.DecodeMethodSignature(new Names(md), null).ParameterTypes;
        return !parameters.Any(p => p.StartsWith("System.Text.Json.Serialization.Metadata.JsonTypeInfo", StringComparison.Ordinal) || p == "System.Text.Json.Serialization.JsonSerializerContext");
    }

    private static string Outermost(MetadataReader md, TypeDefinitionHandle handle)
    {
        var type = md.GetTypeDefinition(handle);
        var name = md.GetString(type.Name);
        while (type.GetDeclaringType() is { IsNil: false } outer)
        {
            type = md.GetTypeDefinition(outer);
            name = md.GetString(type.Name);
        }

        return md.GetString(type.Namespace) + "." + name;
    }

    /// <summary>A signature's types by their full names (generic arguments left out).</summary>
    private sealed class Names(MetadataReader md) : ISignatureTypeProvider<string, object?>
    {
        public string GetTypeFromDefinition(MetadataReader reader, TypeDefinitionHandle handle, byte rawTypeKind) =>
            md.GetString(md.GetTypeDefinition(handle).Namespace) + "." + md.GetString(md.GetTypeDefinition(handle).Name);

        public string GetTypeFromReference(MetadataReader reader, TypeReferenceHandle handle, byte rawTypeKind) =>
            md.GetString(md.GetTypeReference(handle).Namespace) + "." + md.GetString(md.GetTypeReference(handle).Name);

        public string GetTypeFromSpecification(MetadataReader reader, object? genericContext, TypeSpecificationHandle handle, byte rawTypeKind) =>
            md.GetTypeSpecification(handle).DecodeSignature(this, genericContext);

        public string GetPrimitiveType(PrimitiveTypeCode typeCode) => typeCode.ToString();

        public string GetSZArrayType(string elementType) => elementType + "[]";

        public string GetArrayType(string elementType, ArrayShape shape) => elementType + "[,]";

        public string GetByReferenceType(string elementType) => elementType + "&";

        public string GetPointerType(string elementType) => elementType + "*";

        public string GetPinnedType(string elementType) => elementType;

        public string GetGenericInstantiation(string genericType, ImmutableArray<string> typeArguments) => genericType;

        public string GetGenericTypeParameter(object? genericContext, int index) => "!" + index;

        public string GetGenericMethodParameter(object? genericContext, int index) => "!!" + index;

        public string GetFunctionPointerType(MethodSignature<string> signature) => "fnptr";

        public string GetModifiedType(string modifier, string unmodifiedType, bool isRequired) => unmodifiedType;
    }
}

/// <summary>For the scan's own test (<see cref="GeneratedJsonTests"/>): a reflection call.</summary>
internal static class JsonScanByReflection
{
    public static string Write(TenantId tenant) => JsonSerializer.Serialize(new { tenant });
}

/// <summary>For the scan's own test: a call with generated metadata.</summary>
internal static class JsonScanByMetadata
{
    public static string Write(WorkerOffer offer) => JsonSerializer.Serialize(offer, QueueJson.Default.WorkerOffer);
}
