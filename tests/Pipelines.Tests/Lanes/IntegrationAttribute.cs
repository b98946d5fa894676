using Xunit.Sdk;

namespace Pipelines.Tests;

/// <summary>
/// The class's tests need the real services `scripts/test` starts (PostgreSQL, the S3 server, the
/// Docker engine), a child process (the CLI, a server, a script) or the machine's cgroups and
/// mounts. They carry the trait <c>Lane=integration</c>.
/// </summary>
[TraitDiscoverer(LaneDiscoverer.TypeName, LaneDiscoverer.AssemblyName)]
[AttributeUsage(AttributeTargets.Class, AllowMultiple = false, Inherited = false)]
public sealed class IntegrationAttribute : Attribute, ITraitAttribute;
