using Xunit.Sdk;

namespace Pipelines.Tests;

/// <summary>
/// The class's tests are unit tests: pure code and temporary folders, no PostgreSQL, S3 server,
/// Docker engine or child process. They carry the trait <c>Lane=unit</c>, which
/// `scripts/test --unit` runs with no service started and none reachable (<see cref="TestLane"/>).
/// Every test class says its lane; <see cref="LaneTests"/> fails on one that does not.
/// </summary>
[TraitDiscoverer(LaneDiscoverer.TypeName, LaneDiscoverer.AssemblyName)]
[AttributeUsage(AttributeTargets.Class, AllowMultiple = false, Inherited = false)]
public sealed class UnitAttribute : Attribute, ITraitAttribute;
