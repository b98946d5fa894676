using System.Net;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Logging;

namespace Pipelines.Server.Access;

/// <summary>The dashboard's login: a form that takes a key and sets a session cookie (never the key itself).</summary>
internal static partial class LoginEndpoints
{
    public static IEndpointRouteBuilder MapLogin(this IEndpointRouteBuilder app)
    {
        app.MapGet("/login", (string? returnUrl) => Form(returnUrl, null)).WithMetadata(TenantAccess.Open).ExcludeFromDescription();
        app.MapPost("/login", LoginAsync).WithMetadata(TenantAccess.Open).ExcludeFromDescription();
        app.MapPost("/logout", async (HttpContext http) =>
        {
            await http.SignOutAsync(Access.CookieScheme);
            return TypedResults.Redirect("/login");
        }).WithMetadata(TenantAccess.Open).ExcludeFromDescription();
        return app;
    }

    private static async Task<Results<RedirectHttpResult, ContentHttpResult>> LoginAsync(HttpContext http, KeyRing ring, ServerOptions server, ILoggerFactory logs)
    {
        var form = await http.Request.ReadFormAsync(http.RequestAborted);
        var returnUrl = SafeReturn(form["returnUrl"]);
        if (!server.KeysConfigured)
        {
            return TypedResults.Redirect(returnUrl);
        }

        var key = ring.Find(form["key"].ToString().Trim());
        if (key is null)
        {
            LogLoginRefused(logs.CreateLogger("Pipelines.Server.Access"), http.Connection.RemoteIpAddress?.ToString() ?? "?");
            return Form(returnUrl, "That key is not valid.", StatusCodes.Status401Unauthorized);
        }

        await http.SignInAsync(Access.CookieScheme, KeyRing.Principal(key, server.RoleOf(key), Access.CookieScheme));
        return TypedResults.Redirect(returnUrl);
    }

    /// <summary>Only a path on this server: never an absolute or protocol-relative address.</summary>
    private static string SafeReturn(string? url) =>
        url is { Length: > 0 } && url[0] == '/' && !url.StartsWith("//", StringComparison.Ordinal) && !url.StartsWith("/\\", StringComparison.Ordinal)
            ? url
            : "/hangfire/runs";

    private static ContentHttpResult Form(string? returnUrl, string? error, int status = StatusCodes.Status200OK) => TypedResults.Content($$"""
        <!DOCTYPE html>
        <html lang="en"><head><meta charset="utf-8"><title>Pipelines: log in</title>
        <style>
          body { font-family: system-ui, sans-serif; background: #f5f5f5; display: flex; justify-content: center; padding-top: 12vh; }
          form { background: #fff; padding: 2em 2.5em; border: 1px solid #ddd; border-radius: 6px; min-width: 22em; }
          h1 { font-size: 1.4em; margin-top: 0; } input[type=password] { width: 100%; padding: .5em; margin: .5em 0 1em; box-sizing: border-box; }
          button { padding: .5em 1.5em; } .error { color: #b00; }
        </style></head>
        <body><form method="post" action="/login">
          <h1>Pipelines</h1>
          {{(error is null ? "" : $"<p class=\"error\">{WebUtility.HtmlEncode(error)}</p>")}}
          <label for="key">Access key</label>
          <input type="password" id="key" name="key" autocomplete="current-password" autofocus>
          <input type="hidden" name="returnUrl" value="{{WebUtility.HtmlEncode(SafeReturn(returnUrl))}}">
          <button type="submit">Log in</button>
        </form></body></html>
        """, "text/html; charset=utf-8", statusCode: status);

    [LoggerMessage(Level = LogLevel.Warning, Message = "login refused from {Address}: the key is not valid")]
    private static partial void LogLoginRefused(ILogger logger, string address);
}
