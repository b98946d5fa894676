using System.Text.Json.Serialization;

namespace Pipelines.Triggers;

/// <summary>The trigger store's lists (overrides, include, exclude), their JSON metadata made at build time. Default options.</summary>
[JsonSerializable(typeof(IReadOnlyList<string>))]
[JsonSerializable(typeof(List<string>))]
internal sealed partial class TriggersJson : JsonSerializerContext;
