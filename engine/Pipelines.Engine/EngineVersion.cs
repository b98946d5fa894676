using System.Reflection;

namespace Pipelines;

/// <summary>
/// The engine's version, the one home every part reads it from (the meter, the traces' source,
/// the resource, run.json, the RO-Crate, <c>pipelines --version</c>): at the bottom, so that no
/// part reaches up into the gather for it.
/// </summary>
public static class EngineVersion
{
    /// <summary>The informational version without its build metadata (the commit after '+').</summary>
    public static string Current { get; } =
        typeof(EngineVersion).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0] ?? "0.0.0";
}
