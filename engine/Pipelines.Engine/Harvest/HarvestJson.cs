using System.Text.Json.Serialization;

namespace Pipelines.Harvest;

/// <summary>A worker's harvesting figures on the worker board, their JSON metadata made at build time. Default options.</summary>
[JsonSerializable(typeof(HarvestStatus))]
internal sealed partial class HarvestJson : JsonSerializerContext;
