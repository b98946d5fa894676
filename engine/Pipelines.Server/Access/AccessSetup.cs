using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.Cookies;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.DataProtection.KeyManagement;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using Pipelines.RunStore;

namespace Pipelines.Server.Access;

/// <summary>Authentication (bearer key or session cookie) and the three policies, read, full and admin.</summary>
internal static class AccessSetup
{
    /// <param name="schema">The run store's schema in PostgreSQL, where the cookies' keys are kept; null for an embedded server (no PostgreSQL).</param>
    public static IServiceCollection AddPipelinesAccess(this IServiceCollection services, ServerOptions options, string? schema)
    {
        services.AddSingleton(new KeyRing(options));

        // The keys that seal session cookies live in PostgreSQL, not in ~/.aspnet: a restarted
        // server (a new container) keeps its sessions, and every server opens every other's. An
        // embedded server is the whole cluster and its sessions end with it: ASP.NET's default.
        services.AddDataProtection().SetApplicationName("pipelines");
        if (schema is not null)
        {
            services.AddSingleton(sp => new PostgresDataProtectionKeys(sp.GetRequiredService<NpgsqlDataSource>(), schema));
            services.AddOptions<KeyManagementOptions>().Configure<PostgresDataProtectionKeys>((o, keys) => o.XmlRepository = new DashboardKeyRepository(keys));
        }

        services.AddAuthentication(Access.Scheme)
            .AddScheme<AuthenticationSchemeOptions, KeyAuthenticationHandler>(Access.Scheme, null)
            .AddCookie(Access.CookieScheme, o =>
            {
                o.Cookie.Name = Access.CookieName;
                o.Cookie.HttpOnly = true;
                o.Cookie.SameSite = SameSiteMode.Strict;
                o.Cookie.SecurePolicy = CookieSecurePolicy.SameAsRequest;
                o.ExpireTimeSpan = TimeSpan.FromHours(12);
                o.SlidingExpiration = true;
                o.LoginPath = "/login";
                o.Events = new CookieAuthenticationEvents
                {
                    // A session lasts only while its key is still configured with the same role and tenant.
                    OnValidatePrincipal = ctx =>
                    {
                        var ring = ctx.HttpContext.RequestServices.GetRequiredService<KeyRing>();
                        var server = ctx.HttpContext.RequestServices.GetRequiredService<ServerOptions>();
                        var id = ctx.Principal?.FindFirst(Access.KeyIdClaim)?.Value;
                        var key = id is null ? null : ring.FindById(id);
                        if (key is null
                            || ctx.Principal!.FindFirst(Access.KeyRoleClaim)?.Value != KeyRing.RoleName(server.RoleOf(key))
                            || ctx.Principal.FindFirst(Access.TenantClaim)?.Value != key.Tenant.Value)
                        {
                            ctx.RejectPrincipal();
                        }

                        return Task.CompletedTask;
                    },
                };
            });
        services.AddAuthorizationBuilder()
            .AddPolicy(Access.ReadPolicy, p => p.RequireAuthenticatedUser().RequireRole("read"))
            .AddPolicy(Access.FullPolicy, p => p.RequireAuthenticatedUser().RequireRole("full"))
            .AddPolicy(Access.AdminPolicy, p => p.RequireAuthenticatedUser().RequireRole("admin"));
        return services;
    }
}
