using System.Xml.Linq;
using Microsoft.AspNetCore.DataProtection.Repositories;
using Pipelines.RunStore;

namespace Pipelines.Server.Access;

/// <summary>
/// Where ASP.NET Core's key manager keeps the data protection keys that seal login cookies: in
/// PostgreSQL (<see cref="PostgresDataProtectionKeys"/>), so that a session outlives a restart
/// of the server, its container included, and any server of the cluster honours it.
/// </summary>
internal sealed class DashboardKeyRepository(PostgresDataProtectionKeys keys) : IXmlRepository
{
    public IReadOnlyCollection<XElement> GetAllElements() => keys.ReadAll().Select(xml => XElement.Parse(xml)).ToList();

    public void StoreElement(XElement element, string friendlyName) => keys.Add(friendlyName, element.ToString(SaveOptions.DisableFormatting));
}
