using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Pipelines.RunStore;
using Pipelines.Tenancy;

namespace Pipelines.Server.Access;

/// <summary>
/// The caller's tenant for one request: what it reaches (<see cref="Scope"/>), whom what it makes
/// belongs to (<see cref="Owner"/>), and the stores and services seen through that scope. Every API
/// handler and dashboard page reads and changes through this, never through the engine's singletons,
/// so another tenant's object answers exactly as a missing one (docs/tenants.md). A handler takes it
/// as a parameter (minimal APIs bind it through <see cref="BindAsync"/>); a page calls <see cref="Of"/>.
/// </summary>
/// <remarks>Partial: each part of the API (runs, functions, algorithms, triggers) adds its views in its own file.</remarks>
internal sealed partial class TenantContext
{
    private static readonly object Key = new();
    private readonly IServiceProvider _services;
    private IRunStore? _runs;

    private TenantContext(IServiceProvider services, TenantScope scope, RunOwner owner)
    {
        _services = services;
        Scope = scope;
        Owner = owner;
    }

    /// <summary>What this request reaches: the key's tenant; an admin key's named tenant or every tenant.</summary>
    public TenantScope Scope { get; }

    /// <summary>
    /// Whom a creation belongs to and who asked: the scope's tenant, or, for an admin key reaching every
    /// tenant, the key's own tenant (docs/tenants.md, "Keys and roles").
    /// </summary>
    public RunOwner Owner { get; }

    /// <summary>
    /// Whether this request sees several tenants' objects side by side (an admin key over every tenant
    /// of a server with tenants): names are per tenant there, so a page keys its rows by tenant and
    /// name and shows whose each is. On a server without tenants everything is the one tenant's.
    /// </summary>
    public bool SeesTenants => Scope.IsAll && Service<TenantOptions>().Configured;

    /// <summary>The run store seen through <see cref="Scope"/>.</summary>
    public IRunStore Runs => _runs ??= Service<IRunStore>().For(Scope);

    /// <summary>The request's context, made once per request (a tenant name an admin key gives that is not a tenant name is a 400).</summary>
    public static TenantContext Of(HttpContext http)
    {
        if (http.Items.TryGetValue(Key, out var made) && made is TenantContext context)
        {
            return context;
        }

        TenantScope scope;
        try
        {
            scope = Access.ScopeOf(http.User, http.Request);
        }
        catch (PipelinesException e)
        {
            throw new BadHttpRequestException(e.Message, StatusCodes.Status400BadRequest, e);
        }

        // Only an admin key names a tenant; one the server does not have is refused rather than
        // shown as empty (and no view is made for it: the services keep one per tenant).
        if (scope.Tenant is { } named && !http.RequestServices.GetRequiredService<TenantOptions>().Exists(named))
        {
            throw new BadHttpRequestException($"tenant: this server has no tenant '{named}'", StatusCodes.Status400BadRequest);
        }

        var owner = new RunOwner(scope.Tenant ?? Access.TenantOf(http.User), Access.Who(http.User));
        context = new TenantContext(http.RequestServices, scope, owner);
        http.Items[Key] = context;
        return context;
    }

    /// <summary>Minimal APIs' binding of a handler parameter of this type.</summary>
    public static ValueTask<TenantContext?> BindAsync(HttpContext http) => ValueTask.FromResult<TenantContext?>(Of(http));

    private T Service<T>()
        where T : notnull => _services.GetRequiredService<T>();
}
