using System.Text.Json;
using System.Text.Json.Serialization;
using Pipelines.Explain;
using Pipelines.Server.Api;

namespace Pipelines.Cli;

/// <summary>
/// The JSON metadata of what <see cref="ServerClient"/> sends and reads (the server's views),
/// made at build time: `pipelines run --server` polls the run's view while it runs, and every
/// command against a server reads one or two views in a process that lives a second. The web
/// defaults (camelCase, case-insensitive reads) as before; the enums' snake_case converter is
/// in ServerClient's options, which take their metadata from here alone, so a view not listed
/// throws instead of falling back to reflection.
/// </summary>
[JsonSourceGenerationOptions(JsonSerializerDefaults.Web)]
[JsonSerializable(typeof(SubmitRunRequest))]
[JsonSerializable(typeof(SubmittedRunView))]
[JsonSerializable(typeof(RunView))]
[JsonSerializable(typeof(PageView<RunView>))]
[JsonSerializable(typeof(LogsView))]
[JsonSerializable(typeof(List<ServerClient.WorkerFigures>))]
[JsonSerializable(typeof(List<Pipelines.Triggers.TriggerSummary>))]
[JsonSerializable(typeof(PageView<TaskView>))]
[JsonSerializable(typeof(Pipelines.Algorithms.PushResult))]
[JsonSerializable(typeof(DeployedView))]
[JsonSerializable(typeof(List<FunctionView>))]
[JsonSerializable(typeof(FunctionDetailView))]
[JsonSerializable(typeof(RunExplanation))]
[JsonSerializable(typeof(TaskExplanation))]
[JsonSerializable(typeof(ServerClient.Problem))]
internal sealed partial class ServerClientJson : JsonSerializerContext;
