namespace Pipelines.Tests.Lineage;

/// <summary>
/// The lineage, crate and report tests read one real run: it is made once for the three
/// classes (a class fixture made it once for each). A collection of their own rather than the
/// end-to-end one, so that it is made only when they run and they need not wait their turn
/// behind every end-to-end test.
/// </summary>
[CollectionDefinition(Name)]
public sealed class LineageCollection : ICollectionFixture<LineageRunFixture>
{
    public const string Name = "lineage";
}
