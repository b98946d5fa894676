namespace Pipelines.Tests.Server;

/// <summary>
/// The classes that talk to a `pipelines server` process; they run one after another. Those
/// that need the same kind of server share one for the run, started once (a bucket with the
/// 200-file sample, a process, two schemas): the plain server and the one with keys. A class
/// that changes what its server is (its roles or settings, its workers drained) keeps a fixture
/// of its own type. A class on a shared server writes under names of its own (an output prefix,
/// a workflow or function name) and looks only at what it made: the runs it submitted, the log
/// its own requests wrote.
/// </summary>
[CollectionDefinition(Name)]
public sealed class ServerCollection : ICollectionFixture<ServerFixture>, ICollectionFixture<KeyedServerFixture>
{
    public const string Name = "server";
}
