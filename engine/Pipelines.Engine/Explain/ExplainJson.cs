using System.Text.Json.Serialization;

namespace Pipelines.Explain;

/// <summary>Why a task ran (a provenance row's <c>ran_because</c>), its JSON metadata made at build time; nulls left out, as before.</summary>
[JsonSourceGenerationOptions(DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(RanBecause))]
internal sealed partial class ExplainJson : JsonSerializerContext;
