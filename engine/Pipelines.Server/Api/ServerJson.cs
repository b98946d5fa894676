using System.Text.Json;
using System.Text.Json.Serialization;
using Pipelines.Explain;

namespace Pipelines.Server.Api;

/// <summary>
/// The run API's JSON metadata, made at build time (docs/benchmarks.md, "Source-generated JSON"):
/// first in the resolver chain of the server's JSON options (PipelinesServer), so the views a
/// run's client polls are not reflected on; the options' own settings (the web defaults,
/// snake_case enums, nulls left out) still apply. A type not listed falls back to reflection.
/// </summary>
[JsonSourceGenerationOptions(JsonSerializerDefaults.Web)]
[JsonSerializable(typeof(SubmitRunRequest))]
[JsonSerializable(typeof(SubmittedRunView))]
[JsonSerializable(typeof(RunView))]
[JsonSerializable(typeof(PageView<RunView>))]
[JsonSerializable(typeof(PageView<TaskView>))]
[JsonSerializable(typeof(LogsView))]
[JsonSerializable(typeof(RunExplanation))]
[JsonSerializable(typeof(TaskExplanation))]
internal sealed partial class ServerJson : JsonSerializerContext;
