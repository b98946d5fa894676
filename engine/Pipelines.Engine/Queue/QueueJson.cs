using System.Text.Json.Serialization;

namespace Pipelines.Queue;

/// <summary>A worker's offer on the worker board, its JSON metadata made at build time. Default options.</summary>
[JsonSerializable(typeof(WorkerOffer))]
internal sealed partial class QueueJson : JsonSerializerContext;
