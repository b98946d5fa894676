using System.Text.Json.Serialization;

namespace Pipelines.Functions;

/// <summary>A queued invocation's manifest, its JSON metadata made at build time. Default options.</summary>
[JsonSerializable(typeof(FunctionService.QueuedInput))]
internal sealed partial class FunctionsJson : JsonSerializerContext;
