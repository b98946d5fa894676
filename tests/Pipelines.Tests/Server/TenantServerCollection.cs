namespace Pipelines.Tests.Server;

/// <summary>
/// The classes that ask a server with two tenants (<see cref="TenantServerFixture"/>): one server
/// process and one set of lab-b's objects for all of them (starting it and making lab-b's run,
/// trigger, function and algorithm is most of their time).
/// </summary>
[CollectionDefinition(Name)]
public sealed class TenantServerCollection : ICollectionFixture<TenantServerFixture>
{
    public const string Name = "tenant server";
}
