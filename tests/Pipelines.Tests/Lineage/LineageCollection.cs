namespace Pipelines.Tests.Lineage;

/// <summary>
/// The lineage, crate and report tests read one real run: it is made once for the three
/// classes (a class fixture made it once for each). A collection of their own, so that it is
/// made only when they run and they wait behind no other class.
/// </summary>
[CollectionDefinition(Name)]
public sealed class LineageCollection : ICollectionFixture<LineageRunFixture>
{
    public const string Name = "lineage";
}
