using Xunit.Abstractions;
using Xunit.Sdk;

namespace Pipelines.Tests;

/// <summary>The trait <c>Lane</c> of <see cref="UnitAttribute"/> and <see cref="IntegrationAttribute"/>, for `dotnet test --filter Lane=unit`.</summary>
public sealed class LaneDiscoverer : ITraitDiscoverer
{
    public const string TypeName = "Pipelines.Tests.LaneDiscoverer";

    public const string AssemblyName = "Pipelines.Tests";

    public const string Trait = "Lane";

    public IEnumerable<KeyValuePair<string, string>> GetTraits(IAttributeInfo traitAttribute)
    {
        yield return new(Trait, traitAttribute is IReflectionAttributeInfo { Attribute: UnitAttribute } ? TestLane.Unit : TestLane.Integration);
    }
}
