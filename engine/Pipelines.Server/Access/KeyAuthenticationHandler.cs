using System.Net;
using System.Text.Encodings.Web;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Pipelines.Server.Access;

/// <summary>
/// Who is asking. With no key configured, requests from loopback get full access and others
/// none (Hangfire's local-requests-only rule); such a loopback caller is an admin of the default tenant. With keys, a request carries
/// `Authorization: Bearer KEY`, or the session cookie that the login form sets.
/// </summary>
internal sealed class KeyAuthenticationHandler(
    IOptionsMonitor<AuthenticationSchemeOptions> options,
    ILoggerFactory logger,
    UrlEncoder encoder,
    KeyRing ring,
    ServerOptions server)
    : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
{
    protected override async Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        if (!server.KeysConfigured)
        {
            return Context.Connection.RemoteIpAddress is { } ip && IPAddress.IsLoopback(ip)
                ? AuthenticateResult.Success(new AuthenticationTicket(KeyRing.Principal("local", KeyRole.Admin, Tenancy.TenantId.Default, null, Scheme.Name), Scheme.Name))
                : AuthenticateResult.NoResult();
        }

        string? header = Request.Headers.Authorization;
        if (header is not null)
        {
            if (!header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
            {
                return AuthenticateResult.Fail("the Authorization header must be `Bearer <key>`");
            }

            var key = ring.Find(header["Bearer ".Length..].Trim());
            return key is null
                ? AuthenticateResult.Fail("the key is not valid")
                : AuthenticateResult.Success(new AuthenticationTicket(KeyRing.Principal(key, server.RoleOf(key), Scheme.Name), Scheme.Name));
        }

        return await Context.AuthenticateAsync(Access.CookieScheme).ConfigureAwait(false);
    }

    protected override async Task HandleChallengeAsync(AuthenticationProperties properties)
    {
        if (server.KeysConfigured && Request.Path.StartsWithSegments("/hangfire") && !Request.Headers.ContainsKey("Authorization"))
        {
            Response.Redirect("/login?returnUrl=" + Uri.EscapeDataString(Request.PathBase + Request.Path + Request.QueryString));
            return;
        }

        Response.StatusCode = StatusCodes.Status401Unauthorized;
        if (server.KeysConfigured)
        {
            Response.Headers.WWWAuthenticate = "Bearer";
        }

        var failure = (await HandleAuthenticateOnceSafeAsync().ConfigureAwait(false)).Failure?.Message;
        await WriteProblemAsync(StatusCodes.Status401Unauthorized, "Unauthorized", server.KeysConfigured
            ? failure ?? "send `Authorization: Bearer <key>` with a configured key"
            : "no keys are configured (Server:Keys), so only requests from loopback are answered").ConfigureAwait(false);
    }

    protected override Task HandleForbiddenAsync(AuthenticationProperties properties)
    {
        Response.StatusCode = StatusCodes.Status403Forbidden;
        return WriteProblemAsync(StatusCodes.Status403Forbidden, "Forbidden", "this key may only read: submitting, cancelling and deleting need a key with the role full");
    }

    private async Task WriteProblemAsync(int status, string title, string detail)
    {
        var problems = Context.RequestServices.GetRequiredService<IProblemDetailsService>();
        await problems.WriteAsync(new ProblemDetailsContext
        {
            HttpContext = Context,
            ProblemDetails = { Status = status, Title = title, Detail = detail },
        }).ConfigureAwait(false);
    }
}
