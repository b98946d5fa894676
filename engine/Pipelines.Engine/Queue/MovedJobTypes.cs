using Hangfire.Common;

namespace Pipelines.Queue;

/// <summary>
/// Job classes that moved, by the name an older build wrote into the jobs it queued: a job queued
/// before an upgrade is still delivered by the class that took its place (with the same method),
/// instead of failing to load and leaving its work queued for ever. Used as Hangfire's type
/// resolver; every other name resolves as Hangfire's default does.
/// </summary>
internal static class MovedJobTypes
{
    /// <summary>Old name (as Hangfire's simple assembly-name serializer writes it) to the class that delivers it now.</summary>
    internal static readonly IReadOnlyDictionary<string, Type> Moved = new Dictionary<string, Type>(StringComparer.Ordinal)
    {
        // Async invocations, queued as Pipelines.Functions.FunctionJob until 2026-12-06: RunAsync(string, PerformContext?, CancellationToken).
        ["Pipelines.Functions.FunctionJob, Pipelines.Engine"] = typeof(InvocationJob),
    };

    public static Type Resolve(string typeName) =>
        Moved.TryGetValue(typeName, out var type) ? type : TypeHelper.DefaultTypeResolver(typeName);
}
