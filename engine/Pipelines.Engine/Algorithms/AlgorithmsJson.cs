using System.Text.Json.Serialization;

namespace Pipelines.Algorithms;

/// <summary>The algorithm store's lists (repository tags, lock-down notes), their JSON metadata made at build time. Default options.</summary>
[JsonSerializable(typeof(IReadOnlyList<string>))]
[JsonSerializable(typeof(List<string>))]
internal sealed partial class AlgorithmsJson : JsonSerializerContext;
