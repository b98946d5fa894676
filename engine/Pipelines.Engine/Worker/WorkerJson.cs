using System.Text.Json.Serialization;
using Pipelines.RunStore;

namespace Pipelines.Worker;

/// <summary>
/// The worker's JSON metadata, made at build time: the cache entry and unit entry every
/// succeeded task writes, and the rows of vacated attempts. Default options.
/// </summary>
[JsonSerializable(typeof(CacheManifest))]
[JsonSerializable(typeof(UnitEntry))]
[JsonSerializable(typeof(List<ProvenanceRow>))]
internal sealed partial class WorkerJson : JsonSerializerContext;
