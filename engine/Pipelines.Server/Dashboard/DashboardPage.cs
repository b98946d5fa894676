using System.Text.RegularExpressions;
using Hangfire.Dashboard;
using Pipelines.Server.Access;

namespace Pipelines.Server.Dashboard;

/// <summary>One of our dashboard pages (<see cref="DashboardSetup.Pages"/>): its route, a sample path, what it reaches of a tenant's, how it is made and its menu text.</summary>
internal sealed record DashboardPage(string Route, string Sample, TenantAccess Access, Func<Match, RazorPage> Make, string? Menu);
