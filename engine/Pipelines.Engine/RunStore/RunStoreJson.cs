using System.Text.Json.Serialization;
using Pipelines.Planning;

namespace Pipelines.RunStore;

/// <summary>
/// The run store's JSON metadata, made at build time: a provenance row per step of every task
/// (the embedded store's spill file, PostgreSQL's provenance table) and a task's inputs and
/// captures (PostgreSQL's tasks table). Default options, as the reflection calls had them.
/// </summary>
[JsonSerializable(typeof(ProvenanceRow))]
[JsonSerializable(typeof(IReadOnlyList<InputFile>))]
[JsonSerializable(typeof(List<InputFile>))]
[JsonSerializable(typeof(IReadOnlyDictionary<string, string>))]
[JsonSerializable(typeof(Dictionary<string, string>))]
internal sealed partial class RunStoreJson : JsonSerializerContext;
