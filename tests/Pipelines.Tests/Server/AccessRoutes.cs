using System.Reflection;
using System.Text.RegularExpressions;
using Hangfire.Dashboard;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Configuration;
using Pipelines.Server;
using Pipelines.Server.Access;

namespace Pipelines.Tests.Server;

/// <summary>
/// What both access matrices ask (the server with two tenants, TenantAccessMatrixTests, and the
/// server without tenants, SingleTenantAccessMatrixTests): the server's route table, Hangfire's own
/// routes, and the objects nobody has that fill a route's parameters. Read from what the server
/// serves, so that an endpoint added later is asked by both without editing a list.
/// </summary>
internal static partial class AccessRoutes
{
    public const string NoRun = "20000101-000000-000000";
    public const string NoInvocation = "0000000000007000800000000000beef";

    /// <summary>The key the route tables are built with (built, not started: it is never presented).</summary>
    private const string BuildKey = "route-table-key-0123456789";

    private static readonly Lazy<IReadOnlyList<Endpoint>> WithTenants = new(() => Read(tenants: true));
    private static readonly Lazy<IReadOnlyList<Endpoint>> WithoutTenants = new(() => Read(tenants: false));

    /// <summary>One endpoint: method, route template, access kind, whether it needs no key, its route parameters and handler.</summary>
    internal sealed record Endpoint(string Method, string Pattern, TenantAccess? Access, bool Anonymous, IReadOnlyList<string> Parameters, MethodInfo? Handler)
    {
        public override string ToString() => $"{Method} {Pattern}";
    }

    /// <summary>The route table of a server with a <c>Tenants</c> section, or of one without (as `pipelines server` builds it).</summary>
    public static IReadOnlyList<Endpoint> Table(bool tenants) => tenants ? WithTenants.Value : WithoutTenants.Value;

    /// <summary>
    /// A route parameter's object that nobody has (the area is the route's second segment: a name
    /// of a function is not a name of a workflow); null when there is none (a new parameter must
    /// be added here).
    /// </summary>
    public static string? Missing(string pattern, string parameter) => (parameter, Area(pattern)) switch
    {
        ("runId", _) => NoRun,
        ("task", _) => "0",
        ("path", _) => "run.json",
        ("id", "functions") => NoInvocation,
        ("version", "algorithms") => "2",
        ("name", "functions" or "algorithms") => "nope-b",
        ("name", "workflows") => "no-such-workflow",
        ("name", "workers") => "no-such-worker",
        ("documentName", _) => "v1",
        _ => null,
    };

    public static string Area(string pattern) => pattern.Split('/', StringSplitOptions.RemoveEmptyEntries) is [_, var area, ..] ? area : "";

    /// <summary>The route parameters of a pattern, in order (<c>{runId}</c>, <c>{**path}</c>).</summary>
    public static IEnumerable<string> ParametersOf(string pattern) => Parameter().Matches(pattern).Select(m => m.Groups[1].Value);

    /// <summary>The pattern with each parameter replaced by <paramref name="fill"/>'s value for it.</summary>
    public static string Fill(string pattern, Func<string, string> fill) => Parameter().Replace(pattern, m => fill(m.Groups[1].Value));

    /// <summary>
    /// Hangfire's own routes (DashboardRoutes.Routes), read by reflection here only: Hangfire keeps
    /// them private. A Hangfire that renames its list fails this loudly, so that the gate is re-checked.
    /// </summary>
    public static IReadOnlyList<(string Route, string Kind)> HangfireRoutes()
    {
        // Building a server registers our pages with Hangfire's routes first.
        _ = Table(tenants: true);
        var field = typeof(Hangfire.Dashboard.RouteCollection).GetField("_dispatchers", BindingFlags.NonPublic | BindingFlags.Instance)
            ?? throw new InvalidOperationException("Hangfire's RouteCollection has no _dispatchers field any more: read its routes anew and check DashboardSetup's gate against them");
        var list = (IEnumerable<Tuple<string, IDashboardDispatcher>>)field.GetValue(DashboardRoutes.Routes)!;
        return list.Select(t => (t.Item1, t.Item2.GetType().Name)).ToList();
    }

    /// <summary>Whether a Hangfire route is a command or the counters: a POST (Hangfire's own answer to a GET is a 500 for those).</summary>
    public static bool IsPost(string kind) => kind is "CommandDispatcher" or "BatchCommandDispatcher" or "JsonStats";

    /// <summary>A path one of Hangfire's route regexes matches: its named groups filled, [0-9]+ a digit.</summary>
    public static string SamplePath(string route)
    {
        var path = Regex.Replace(route, @"\(\?<(\w+)>[^)]*\)", m => m.Groups[1].Value == "JobId" ? "0" : "default").Replace("[0-9]+", "0", StringComparison.Ordinal);
        Assert.Matches("^" + route + "$", path);
        return path;
    }

    private static IReadOnlyList<Endpoint> Read(bool tenants)
    {
        var settings = new Dictionary<string, string?>
        {
            ["Server:Urls"] = "http://127.0.0.1:0",
            ["Server:Keys:0:Key"] = BuildKey,
            ["Server:Keys:0:Role"] = tenants ? "admin" : "full",
        };
        if (tenants)
        {
            settings["Tenants:lab-a:Output"] = "s3://matrix/lab-a/";
            settings["Tenants:lab-b:Output"] = "s3://matrix/lab-b/";
        }

        var app = PipelinesServer.Build(new ConfigurationBuilder().AddInMemoryCollection(settings).Build());
        try
        {
            return ((IEndpointRouteBuilder)app).DataSources.SelectMany(d => d.Endpoints).OfType<RouteEndpoint>()
                .SelectMany(e => (e.Metadata.GetMetadata<HttpMethodMetadata>()?.HttpMethods ?? ["GET"]).Select(m => new Endpoint(
                    m,
                    "/" + e.RoutePattern.RawText!.Trim('/'),
                    e.Metadata.GetMetadata<TenantAccess>(),
                    e.Metadata.GetMetadata<IAllowAnonymous>() is not null || e.Metadata.GetMetadata<IAuthorizeData>() is null,
                    e.RoutePattern.Parameters.Select(p => p.Name).ToList(),
                    e.Metadata.GetMetadata<MethodInfo>())))
                .Where(e => e.Method != "HEAD")
                .OrderBy(e => e.Pattern, StringComparer.Ordinal).ThenBy(e => e.Method, StringComparer.Ordinal)
                .ToList();
        }
        finally
        {
            app.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }
    }

    [GeneratedRegex(@"\{\**(\w+)\}")]
    private static partial Regex Parameter();
}
