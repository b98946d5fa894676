using Pipelines.Containers;

namespace Pipelines.Tests.Containers;

/// <summary>The container seams of one engine (Hosting/EngineHost.AddContainers wires the same six), for the contract suites.</summary>
internal sealed record ContainerSeams(
    IContainerRuntime Runtime,
    IContainerImages Images,
    ILongLivedContainers Containers,
    IContainerSuspender Suspender,
    IContainerSweep Sweep,
    IEngineLiveness Liveness)
{
    internal static ContainerSeams Of(DockerEngine engine) => new(engine.Runtime, engine.Images, engine.Containers, engine.Suspender, engine.Sweep, engine.Liveness);
}
