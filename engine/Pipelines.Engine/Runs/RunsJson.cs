using System.Text.Json.Serialization;

namespace Pipelines.Runs;

/// <summary>
/// The run definition's JSON metadata, made at build time: each task's worker reads the
/// definition, and reflection-made converters are code the ReadyToRun compiler cannot see, so a
/// short-lived process would JIT them (docs/benchmarks.md, "Source-generated JSON"). Enums as
/// their names, as the reflection options had them (<c>new JsonStringEnumConverter()</c>).
/// </summary>
[JsonSourceGenerationOptions(UseStringEnumConverter = true)]
[JsonSerializable(typeof(RunDefinition))]
internal sealed partial class RunsJson : JsonSerializerContext;
