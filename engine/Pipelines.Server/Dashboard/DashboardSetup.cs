using Hangfire;
using Hangfire.Dashboard;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Pipelines.Server.Access;

namespace Pipelines.Server.Dashboard;

/// <summary>
/// The Hangfire dashboard at /hangfire, with the Runs, Functions, Algorithms and Workers pages added to its routes and navigation,
/// readable job names, and access by the same keys as the API (a read key gets a read-only dashboard).
/// </summary>
internal static class DashboardSetup
{
    public const string Path = "/hangfire";

    private static readonly Lazy<bool> Pages = new(() =>
    {
        // Hangfire's routes and menu are process-wide: they are added once.
        DashboardRoutes.Routes.AddRazorPage("/runs", _ => new RunsPage());
        DashboardRoutes.Routes.AddRazorPage("/runs/(?<runId>[0-9A-Za-z-]+)", m => new RunPage(m.Groups["runId"].Value));
        NavigationMenu.Items.Add(page => new MenuItem("Runs", page.Url.To("/runs"))
        {
            Active = page.RequestPath.StartsWith("/runs", StringComparison.Ordinal),
        });
        DashboardRoutes.Routes.AddRazorPage("/functions", _ => new FunctionsPage());
        NavigationMenu.Items.Add(page => new MenuItem("Functions", page.Url.To("/functions"))
        {
            Active = page.RequestPath.StartsWith("/functions", StringComparison.Ordinal),
        });
        DashboardRoutes.Routes.AddRazorPage("/algorithms", _ => new AlgorithmsPage());
        NavigationMenu.Items.Add(page => new MenuItem("Algorithms", page.Url.To("/algorithms"))
        {
            Active = page.RequestPath.StartsWith("/algorithms", StringComparison.Ordinal),
        });
        DashboardRoutes.Routes.AddRazorPage("/workers", _ => new WorkersPage());
        NavigationMenu.Items.Add(page => new MenuItem("Workers", page.Url.To("/workers"))
        {
            Active = page.RequestPath.StartsWith("/workers", StringComparison.Ordinal),
        });
        return true;
    });

    public static WebApplication MapPipelinesDashboard(this WebApplication app, JobNames names)
    {
        _ = Pages.Value;

        // Before Hangfire sees the request: no identity means a login form (keys) or 401 (no keys, not loopback).
        app.UseWhen(
            http => http.Request.Path.StartsWithSegments(Path),
            branch => branch.Use(async (http, next) =>
            {
                if (http.User.Identity?.IsAuthenticated != true)
                {
                    await http.ChallengeAsync().ConfigureAwait(false);
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
        });
        return app;
    }

    /// <summary>The identity was settled by the server's authentication; Hangfire only checks there is one.</summary>
    private sealed class SignedInFilter : IDashboardAuthorizationFilter
    {
        public bool Authorize(DashboardContext context) => context.GetHttpContext().User.Identity?.IsAuthenticated == true;
    }
}
