using System.Text.Json.Serialization;

namespace Pipelines.Usage;

/// <summary>The ledger's JSON metadata, made at build time (a usage record per task delivery in the embedded store's spill file). Default options.</summary>
[JsonSerializable(typeof(UsageRecord))]
internal sealed partial class UsageJson : JsonSerializerContext;
