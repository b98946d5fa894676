using System.Text.RegularExpressions;
using Hangfire;
using Hangfire.Dashboard;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Pipelines.Server.Access;
using Pipelines.Tenancy;

namespace Pipelines.Server.Dashboard;

/// <summary>
/// The Hangfire dashboard at /hangfire, with the Runs, Functions, Algorithms, Usage and Workers pages added to its routes and navigation,
/// readable job names, and access by the same keys as the API (a read key gets a read-only dashboard). On a server with
/// tenants, a caller who is not admin reaches only <see cref="Pages"/> (and Hangfire's static assets): Hangfire's own pages
/// show every tenant's jobs and their arguments, so they answer 404 there, and their menu items and counters are not drawn.
/// </summary>
internal static class DashboardSetup
{
    public const string Path = "/hangfire";

    /// <summary>
    /// Our pages: Hangfire's route (a regex over the path under /hangfire), a sample path (route
    /// parameters in braces, as the API's route templates name them), what the page reaches of a
    /// tenant's (<see cref="TenantAccess"/>), how it is made, and its menu item, if any. The one
    /// list both the routes and the tenants' gate are made from, and that the access matrix reads.
    /// </summary>
    public static IReadOnlyList<DashboardPage> Pages { get; } =
    [
        new("/runs", "/runs", TenantAccess.Listing, _ => new RunsPage(), "Runs"),
        new("/runs/(?<runId>[0-9A-Za-z-]+)", "/runs/{runId}", TenantAccess.Owned, m => new RunPage(m.Groups["runId"].Value), null),
        new("/functions", "/functions", TenantAccess.Listing, _ => new FunctionsPage(), "Functions"),
        new("/algorithms", "/algorithms", TenantAccess.Listing, _ => new AlgorithmsPage(), "Algorithms"),
        new("/usage", "/usage", TenantAccess.Listing, _ => new UsagePage(), "Usage"),

        // The machines are the operator's, but the page names no run, function or tenant: every key sees it.
        new("/workers", "/workers", TenantAccess.Open, _ => new WorkersPage(), "Workers"),
    ];

    /// <summary>
    /// Hangfire's scripts, styles and fonts (DashboardRoutes' embedded content): the same bytes for
    /// every caller, no data, so open to every key. Its /stats is not here: that is every tenant's counts.
    /// </summary>
    public static IReadOnlyList<string> StaticAssets { get; } =
        ["/js[0-9]+", "/css[0-9]+", "/css-dark[0-9]+", "/fonts/glyphicons-halflings-regular/(eot|svg|ttf|woff|woff2)"];

    // Hangfire's routes and menu are process-wide: they are added once, whatever the number of servers in the process.
    private static readonly Lazy<bool> Registered = new(() =>
    {
        // Hangfire's own menu items (jobs, retries, recurring jobs, servers) carry cluster-wide
        // counters: drawn for those who see the cluster only. Its navigation skips a null item.
        for (var i = 0; i < NavigationMenu.Items.Count; i++)
        {
            var builtIn = NavigationMenu.Items[i];
            NavigationMenu.Items[i] = page => SeesCluster(page.Context.GetHttpContext()) ? builtIn(page) : null!;
        }

        foreach (var page in Pages)
        {
            DashboardRoutes.Routes.AddRazorPage(page.Route, page.Make);
            if (page.Menu is { } text)
            {
                var route = page.Route;
                NavigationMenu.Items.Add(p => new MenuItem(text, p.Url.To(route)) { Active = p.RequestPath.StartsWith(route, StringComparison.Ordinal) });
            }
        }

        return true;
    });

    public static WebApplication MapPipelinesDashboard(this WebApplication app, JobNames names)
    {
        _ = Registered.Value;
        var tenants = app.Services.GetRequiredService<TenantOptions>();

        // Before Hangfire sees the request: no identity means a login form (keys) or 401 (no keys, not loopback);
        // a tenant's key asking for a page outside Pages gets 404, as for a page that is not there.
        app.UseWhen(
            http => http.Request.Path.StartsWithSegments(Path),
            branch => branch.Use(async (http, next) =>
            {
                if (http.User.Identity?.IsAuthenticated != true)
                {
                    await http.ChallengeAsync().ConfigureAwait(false);
                    return;
                }

                http.Request.Path.StartsWithSegments(Path, out var rest);
                if (!SeesCluster(http) && !OpenToTenants(rest.Value))
                {
                    http.Response.StatusCode = StatusCodes.Status404NotFound;
                    return;
                }

                await next(http).ConfigureAwait(false);
            }));
        app.UseHangfireDashboard(Path, new DashboardOptions
        {
            Authorization = [new SignedInFilter()],
            IsReadOnlyFunc = ctx => !Access.Access.CanChange(ctx.GetHttpContext().User),
            DisplayNameFunc = names.Describe,
            DashboardTitle = "Pipelines",
            AppPath = null,

            // The footer would name the database's host and schema to every tenant.
            DisplayStorageConnectionString = !tenants.Configured,
        });
        return app;
    }

    /// <summary>
    /// Whether the caller sees the whole cluster's dashboard: an admin key, or any key of a server
    /// without tenants (everything there is the one tenant's).
    /// </summary>
    private static bool SeesCluster(HttpContext http) =>
        Access.Access.IsAdmin(http.User) || !http.RequestServices.GetRequiredService<TenantOptions>().Configured;

    /// <summary>Whether a path under /hangfire is one of <see cref="Pages"/> or a static asset, matched as Hangfire matches its routes.</summary>
    private static bool OpenToTenants(string? path)
    {
        // Hangfire's RouteCollection.FindDispatcher: "/" for nothing, a trailing slash dropped, anchored, case-insensitive.
        path = string.IsNullOrEmpty(path) ? "/" : path.Length > 1 ? path.TrimEnd('/') : path;
        return Pages.Select(p => p.Route).Concat(StaticAssets).Any(route =>
            Regex.IsMatch(path, "^" + route + "$", RegexOptions.CultureInvariant | RegexOptions.IgnoreCase | RegexOptions.Singleline, TimeSpan.FromSeconds(1)));
    }

    /// <summary>The identity was settled by the server's authentication; Hangfire only checks there is one.</summary>
    private sealed class SignedInFilter : IDashboardAuthorizationFilter
    {
        public bool Authorize(DashboardContext context) => context.GetHttpContext().User.Identity?.IsAuthenticated == true;
    }
}
