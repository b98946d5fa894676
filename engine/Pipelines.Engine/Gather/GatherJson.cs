using System.Text.Json.Serialization;

namespace Pipelines.Gather;

/// <summary>run.json's metadata, made at build time; indented, as the reflection options had it.</summary>
[JsonSourceGenerationOptions(WriteIndented = true)]
[JsonSerializable(typeof(RunSummary))]
internal sealed partial class GatherJson : JsonSerializerContext;
