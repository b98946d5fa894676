using System.Text.Json.Serialization;

namespace Pipelines.Cli;

/// <summary>
/// The JSON metadata of what `pipelines run` writes while it runs (the live marker of
/// <see cref="RunIndex"/>, rewritten at every poll), made at build time so that the process does not
/// JIT reflection-made converters. Default options, as before.
/// </summary>
[JsonSerializable(typeof(RunIndex.Live))]
internal sealed partial class CliJson : JsonSerializerContext;
