using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Headers;
using System.Reflection;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Hangfire.Dashboard;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Configuration;
using Pipelines.Algorithms;
using Pipelines.Functions;
using Pipelines.RunStore;
using Pipelines.Server;
using Pipelines.Server.Access;
using Pipelines.Server.Dashboard;
using Pipelines.Triggers;

namespace Pipelines.Tests.Server;

/// <summary>
/// The access matrix of a server with two tenants, made from what the server serves, not from a
/// hand list: every endpoint of the route table and every dashboard page (ours and Hangfire's),
/// for each caller (no key, lab-a's read key, lab-a's full key, lab-b's full key, the admin key),
/// is held to the rule its <see cref="TenantAccess"/> names (docs/tenants.md, "The access matrix").
/// An endpoint added without that metadata, or without a sample for a route parameter, fails here by name.
/// </summary>
[Collection(TenantServerCollection.Name)]
[Integration]
public sealed partial class TenantAccessMatrixTests(TenantServerFixture fixture)
{
    private const string NoRun = "20000101-000000-000000";
    private const string NoInvocation = "0000000000007000800000000000beef";

    /// <summary>What a handler must not take: a store or service over every tenant (the request's TenantContext gives the scoped views).</summary>
    private static readonly Type[] Unscoped =
        [typeof(IRunStore), typeof(IFunctionStore), typeof(ITriggerStore), typeof(IAlgorithmStore), typeof(FunctionService), typeof(AlgorithmService), typeof(TriggerRegistrar), typeof(S3EventIngest)];

    private static readonly Lazy<IReadOnlyList<Endpoint>> Table = new(ReadRouteTable);

    public enum Caller { None, ARead, AFull, BFull, Admin }

    /// <summary>One endpoint: method, route template, access kind, whether it needs no key.</summary>
    internal sealed record Endpoint(string Method, string Pattern, TenantAccess? Access, bool Anonymous, IReadOnlyList<string> Parameters, MethodInfo? Handler)
    {
        public override string ToString() => $"{Method} {Pattern}";
    }

    [Fact]
    public void Every_endpoint_declares_its_tenant_access_has_a_sample_for_each_route_parameter_and_takes_no_unscoped_store()
    {
        var problems = new List<string>();
        foreach (var e in Table.Value)
        {
            if (e.Access is null)
            {
                problems.Add($"{e}: no TenantAccess metadata (.WithMetadata(TenantAccess.X))");
            }

            problems.AddRange(e.Parameters.Where(p => Sample(e.Pattern, p) is null).Select(p => $"{e}: no sample for route parameter {{{p}}} (TenantAccessMatrixTests.Sample)"));
            problems.AddRange((e.Handler?.GetParameters() ?? []).Where(p => Unscoped.Contains(p.ParameterType))
                .Select(p => $"{e}: its handler takes {p.ParameterType.Name} {p.Name}, which reaches every tenant: take TenantContext"));
        }

        Assert.True(problems.Count == 0, string.Join("\n", problems));
        Assert.Contains(Table.Value, e => e.Pattern == "/api/runs/{runId}" && e.Access == TenantAccess.Owned);
    }

    [Fact]
    public async Task Every_endpoint_answers_each_caller_as_its_tenant_access_says()
    {
        var rows = Table.Value.Where(e => e.Access is not null).SelectMany(e => Enum.GetValues<Caller>().Select(c => (Endpoint: e, Caller: c))).ToList();
        var failures = new ConcurrentBag<string>();
        await Parallel.ForEachAsync(rows, new ParallelOptions { MaxDegreeOfParallelism = 6 }, async (row, _) =>
        {
            try
            {
                await CheckAsync(row.Endpoint.Method, row.Endpoint.Pattern, row.Endpoint.Access!, row.Endpoint.Anonymous, row.Caller);
            }
            catch (Exception e) when (e is Xunit.Sdk.XunitException or InvalidOperationException)
            {
                failures.Add($"{row.Endpoint} as {row.Caller}: {e.Message}");
            }
        });

        Assert.True(failures.IsEmpty, string.Join("\n\n", failures.Order(StringComparer.Ordinal)));
    }

    [Fact]
    public async Task Every_dashboard_page_of_ours_answers_each_caller_as_its_tenant_access_says()
    {
        var failures = new ConcurrentBag<string>();
        var rows = DashboardSetup.Pages.SelectMany(p => Enum.GetValues<Caller>().Select(c => (Page: p, Caller: c)));
        await Parallel.ForEachAsync(rows, new ParallelOptions { MaxDegreeOfParallelism = 6 }, async (row, _) =>
        {
            try
            {
                await CheckAsync("GET", DashboardSetup.Path + row.Page.Sample, row.Page.Access, anonymous: false, row.Caller);
            }
            catch (Exception e) when (e is Xunit.Sdk.XunitException or InvalidOperationException)
            {
                failures.Add($"page {row.Page.Sample} as {row.Caller}: {e.Message}");
            }
        });

        Assert.True(failures.IsEmpty, string.Join("\n\n", failures.Order(StringComparer.Ordinal)));
    }

    [Fact]
    public async Task Every_hangfire_route_answers_404_to_a_tenants_keys_and_is_served_to_the_admin_key()
    {
        var routes = HangfireRoutes().Where(r => DashboardSetup.Pages.All(p => p.Route != r.Route)).ToList();
        Assert.Contains(routes, r => r.Route == "/jobs/details/(?<JobId>.+)");
        var failures = new ConcurrentBag<string>();
        var rows = routes.SelectMany(r => new[] { Caller.ARead, Caller.AFull, Caller.BFull, Caller.Admin }.Select(c => (Route: r, Caller: c)));
        await Parallel.ForEachAsync(rows, new ParallelOptions { MaxDegreeOfParallelism = 6 }, async (row, _) =>
        {
            var path = DashboardSetup.Path + SamplePath(row.Route.Route);
            var isStatic = DashboardSetup.StaticAssets.Contains(row.Route.Route) || row.Route.Route.StartsWith("/fonts/", StringComparison.Ordinal);
            // Commands and the counters are POSTs (Hangfire's own answer to a GET is a 500 for those).
            var post = row.Route.Kind is "CommandDispatcher" or "BatchCommandDispatcher" or "JsonStats";
            var (status, _) = await SendAsync(row.Caller, post ? "POST" : "GET", path, post ? new FormUrlEncodedContent([]) : null);
            var expected = (row.Caller, row.Route.Kind) switch
            {
                (not Caller.Admin, _) when !isStatic => HttpStatusCode.NotFound,
                (_, "RazorPageDispatcher") or (_, "CombinedResourceDispatcher") or (_, "EmbeddedResourceDispatcher") => HttpStatusCode.OK,

                _ => (HttpStatusCode?)null,
            };
            if (expected is { } e ? status != e : status is HttpStatusCode.NotFound or HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden or >= HttpStatusCode.InternalServerError)
            {
                failures.Add($"{path} ({row.Route.Kind}) as {row.Caller}: {(int)status}, expected {(expected is null ? "served" : ((int)expected).ToString(System.Globalization.CultureInfo.InvariantCulture))}");
            }
        });

        Assert.True(failures.IsEmpty, string.Join("\n", failures.Order(StringComparer.Ordinal)));
    }

    [Fact]
    public async Task Hangfires_menu_items_and_counters_are_drawn_for_the_admin_key_only()
    {
        var tenant = (await SendAsync(Caller.AFull, "GET", "/hangfire/runs", null)).Body;
        var admin = (await SendAsync(Caller.Admin, "GET", "/hangfire/runs", null)).Body;

        foreach (var link in new[] { "/hangfire/jobs/enqueued", "/hangfire/retries", "/hangfire/recurring", "/hangfire/servers" })
        {
            Assert.DoesNotContain($"href=\"{link}\"", tenant, StringComparison.Ordinal);
            Assert.Contains($"href=\"{link}\"", admin, StringComparison.Ordinal);
        }

        Assert.Contains("href=\"/hangfire/functions\"", tenant, StringComparison.Ordinal);
        Assert.Contains("href=\"/hangfire/workers\"", tenant, StringComparison.Ordinal);
    }

    /// <summary>One endpoint (or page) as one caller, held to its kind's rule.</summary>
    private async Task CheckAsync(string method, string pattern, TenantAccess access, bool anonymous, Caller caller)
    {
        var changes = method != "GET";
        var dashboard = pattern.StartsWith(DashboardSetup.Path, StringComparison.Ordinal);
        // Changes are not sent as lab-b or the admin key to what a tenant owns: they would change the fixture's objects.
        if (changes && caller is Caller.BFull or Caller.Admin && access != TenantAccess.Admin && access != TenantAccess.Open)
        {
            return;
        }

        var foreign = Fill(pattern, foreign: true);
        var (status, body) = await SendAsync(caller, method, foreign, BodyOf(method, pattern, foreign: true));
        if (anonymous)
        {
            // No key needed: the key plays no part in the answer.
            var (anyone, _) = await SendAsync(Caller.None, method, foreign, BodyOf(method, pattern, foreign: true));
            Expect(status == anyone && status is not HttpStatusCode.Forbidden, status, body, $"what a caller without a key gets ({(int)anyone})");
            return;
        }

        switch (caller)
        {
            case Caller.None when dashboard:
                Expect(status == HttpStatusCode.Redirect, status, body, "302 to the login form");
                return;
            case Caller.None:
                Expect(status == HttpStatusCode.Unauthorized, status, body, "401");
                return;
            case Caller.ARead when changes:
                // The role is checked first: a read key is refused a change whether or not the object exists.
                Expect(status == HttpStatusCode.Forbidden, status, body, "403");
                return;
        }

        var tenantKey = caller is Caller.ARead or Caller.AFull or Caller.BFull;
        if (access == TenantAccess.Admin)
        {
            Expect(tenantKey ? status == HttpStatusCode.Forbidden : status is not (HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden), status, body, tenantKey ? "403" : "served");
        }
        else if (access == TenantAccess.Open)
        {
            Expect(status is not (HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden or HttpStatusCode.NotFound) && status < HttpStatusCode.InternalServerError, status, body, "served");
        }
        else if (access == TenantAccess.Owned || (access == TenantAccess.Creating && !CreatesWithLocations(pattern)))
        {
            await CheckOwnedAsync(method, pattern, caller, status, body);
        }
        else if (access == TenantAccess.Listing)
        {
            Expect(status == HttpStatusCode.OK, status, body, "200");
            if (caller is Caller.ARead or Caller.AFull)
            {
                var own = body.Replace(EventKey, "", StringComparison.Ordinal);
                var seen = LabBMarkers().Where(m => own.Contains(m, StringComparison.Ordinal)).ToList();
                Expect(seen.Count == 0, status, body, $"none of lab-b's names, but it shows {string.Join(", ", seen)}");
            }
            else if (ListedForOwner(pattern) is { } mine)
            {
                Expect(body.Contains(mine, StringComparison.Ordinal), status, body, $"lab-b's {mine} listed for {caller}");
            }
        }
        else if (access == TenantAccess.Creating && caller == Caller.AFull)
        {
            const string field = "output.uri";
            var paths = status == HttpStatusCode.BadRequest
                ? JsonDocument.Parse(body).RootElement.GetProperty("problems").EnumerateArray().Select(p => p.GetProperty("path").GetString()).ToList()
                : [];
            Expect(paths.Contains(field), status, body, $"400 naming {field}");
            Expect(!body.Replace($"s3://{fixture.Bucket}/lab-b/stolen/", "", StringComparison.Ordinal).Contains("lab-b", StringComparison.Ordinal), status, body, "no word of lab-b's own locations");
        }
    }

    /// <summary>lab-a on lab-b's object answers exactly as on a missing one; its owner and the admin reach it.</summary>
    private async Task CheckOwnedAsync(string method, string pattern, Caller caller, HttpStatusCode status, string body)
    {
        var changes = method != "GET";
        switch (caller)
        {
            case Caller.ARead or Caller.AFull:
                var (missingStatus, missingBody) = await SendAsync(caller, method, Fill(pattern, foreign: false), BodyOf(method, pattern, foreign: false));
                Expect(status is >= HttpStatusCode.BadRequest and < HttpStatusCode.InternalServerError, status, body, "a 4xx, as for a missing one");
                Expect(missingStatus == status, status, body, $"the missing one's {(int)missingStatus}");
                var expected = Pairs(pattern).Aggregate(Comparable(pattern, missingBody), (text, p) => text.Replace(p.Missing, p.Foreign, StringComparison.Ordinal));
                Expect(expected == Comparable(pattern, body), status, body, "the missing one's body, its id aside:\n" + expected);
                break;

            // The owner and the admin key (over every tenant) reach the object: the 404 above is the scope, not a broken endpoint.
            // Changes are not sent as them: they would change the fixture's objects.
            // Names are per tenant: the admin key names lab-b (Pipelines-Tenant) to reach lab-b's object by name.
            case Caller.BFull or Caller.Admin when !changes:
                if (caller == Caller.Admin)
                {
                    (status, body) = await SendAsync(caller, method, Fill(pattern, foreign: true), null, tenant: "lab-b");
                }

                var (aStatus, aBody) = await SendAsync(Caller.AFull, method, Fill(pattern, foreign: true), null);
                Expect((status, Comparable(pattern, body)) != (aStatus, Comparable(pattern, aBody)), status, body, $"not lab-a's answer ({(int)aStatus})");
                break;
        }
    }

    private static void Expect(bool holds, HttpStatusCode status, string body, string what)
    {
        if (!holds)
        {
            body = Comparable(body.TrimStart().StartsWith("<!DOCTYPE", StringComparison.Ordinal) ? DashboardSetup.Path : "", body);
            throw new Xunit.Sdk.XunitException($"expected {what}; got {(int)status}: {(body.Length > 1500 ? body[..600] + "..." + body[^900..] : body)}");
        }
    }

    /// <summary>
    /// A route parameter's sample: lab-b's object (foreign) and an object nobody has (missing); null
    /// when the matrix has none (an endpoint with a new parameter must add it here).
    /// </summary>
    private (string Foreign, string Missing)? Sample(string pattern, string parameter) => (parameter, Area(pattern)) switch
    {
        ("runId", _) => (fixture.LabBRun, NoRun),
        ("task", _) => ("0", "0"),
        ("path", _) => ("run.json", "run.json"),
        ("id", "functions") => (fixture.LabBAsyncInvocation, NoInvocation),
        ("version", "algorithms") => ("2", "2"),
        ("name", "functions") => (TenantServerFixture.LabBFunction, "nope-b"),
        ("name", "algorithms") => (TenantServerFixture.LabBAlgorithm, "nope-b"),
        ("name", "workflows") => (TenantServerFixture.LabBWorkflow, "no-such-workflow"),
        ("name", "workers") => ("no-such-worker", "no-such-worker"),
        ("documentName", _) => ("v1", "v1"),
        _ => null,
    };

    private static string Area(string pattern) => pattern.Split('/', StringSplitOptions.RemoveEmptyEntries) is [_, var area, ..] ? area : "";

    /// <summary>The request path: route parameters filled with lab-b's samples or missing ones, and the query an endpoint needs.</summary>
    private string Fill(string pattern, bool foreign)
    {
        var path = Parameter().Replace(pattern, m =>
        {
            var s = Sample(pattern, m.Groups[1].Value) ?? throw new InvalidOperationException($"no sample for {m.Value}");
            return foreign ? s.Foreign : s.Missing;
        });
        return pattern switch
        {
            "/api/lineage" => path + "?uri=" + Uri.EscapeDataString($"s3://{fixture.Bucket}/lab-b/out/{(foreign ? fixture.LabBRun : NoRun)}/run.json"),
            "/api/runs/{runId}/logs" => path + "?task=0",
            _ => path,
        };
    }

    private IEnumerable<(string Missing, string Foreign)> Pairs(string pattern) =>
        Parameter().Matches(pattern).Select(m => Sample(pattern, m.Groups[1].Value)!.Value).Select(s => (s.Missing, s.Foreign))
            .Concat(pattern == "/api/lineage" ? [(NoRun, fixture.LabBRun)] : [])
            .Concat(pattern == "/api/functions" ? [(MissingImage, fixture.LabBDigest)] : [])
            .Where(p => p.Missing != p.Foreign);

    private const string MissingImage = "pipelines-tests/no-such-image:matrix";

    /// <summary>The object an S3 event posted by the matrix names: under lab-b's watched prefix.</summary>
    private const string EventKey = "lab-b/incoming/m/S001_R1.fastq";

    /// <summary>A body for the endpoints that need one: for foreign, naming lab-b's objects or locations.</summary>
    private HttpContent? BodyOf(string method, string pattern, bool foreign) => (method, pattern) switch
    {
        ("POST", "/api/runs") => Json(new { workflow = fixture.LaneWorkflow(1, $"s3://{fixture.Bucket}/lab-b/stolen/") }),
        ("POST", "/api/workflows") => Json(new
        {
            workflow = File.ReadAllText(Path.Combine(Support.TestEnvironment.RepoRoot, "workflows", "fastq-stats-triggered.yaml")),
            set = new[] { $"input.uri=s3://{fixture.Bucket}/raw/lane1/", $"trigger.uri=s3://{fixture.Bucket}/raw/lane1/", $"output.uri=s3://{fixture.Bucket}/lab-b/stolen/" },
        }),
        ("POST", "/api/functions") => new StringContent(TenantServerFixture.Echo("stolen", "x", foreign ? fixture.LabBDigest : MissingImage), Encoding.UTF8, "application/yaml"),
        ("POST", "/api/triggers/events") => new StringContent(
            """{"Records":[{"eventName":"ObjectCreated:Put","eventTime":"2026-01-01T00:00:00Z","s3":{"bucket":{"name":"BUCKET"},"object":{"key":"KEY","size":10,"eTag":"abc"}}}]}"""
                .Replace("BUCKET", fixture.Bucket, StringComparison.Ordinal).Replace("KEY", EventKey, StringComparison.Ordinal), Encoding.UTF8, "application/json"),
        ("POST", "/api/functions/{name}/invoke") => new StringContent("hello"),
        ("POST", "/api/algorithms/{name}/versions/{version}") => new ByteArrayContent([]) { Headers = { ContentType = new MediaTypeHeaderValue("application/x-tar") } },
        ("POST", _) => new StringContent(""),
        _ => null,
    };

    /// <summary>Whether a creating endpoint's body names locations (400 naming the field), rather than objects (answered as missing ones).</summary>
    private static bool CreatesWithLocations(string pattern) => pattern is "/api/runs" or "/api/workflows";

    private static StringContent Json(object body) => new(JsonSerializer.Serialize(body), Encoding.UTF8, "application/json");

    /// <summary>What lab-b's own key finds in a listing (lab-a's must not).</summary>
    private string? ListedForOwner(string pattern) => pattern switch
    {
        "/api/runs" or "/hangfire/runs" => fixture.LabBRun,
        "/api/workflows" => TenantServerFixture.LabBWorkflow,
        "/api/functions" or "/hangfire/functions" => TenantServerFixture.LabBFunction,
        "/api/algorithms" or "/hangfire/algorithms" => TenantServerFixture.LabBAlgorithm,
        "/hangfire/usage" => "<td>lab-b</td>",
        _ => null,
    };

    private IEnumerable<string> LabBMarkers() =>
    [
        fixture.LabBRun, TenantServerFixture.LabBWorkflow, TenantServerFixture.LabBFunction, TenantServerFixture.LabBAlgorithm,
        fixture.LabBDigest, fixture.LabBSyncInvocation, fixture.LabBAsyncInvocation, "lab-b",
    ];

    private async Task<(HttpStatusCode Status, string Body)> SendAsync(Caller caller, string method, string path, HttpContent? content, string? tenant = null)
    {
        using var http = fixture.As(caller switch
        {
            Caller.ARead => TenantServerFixture.LabARead,
            Caller.AFull => TenantServerFixture.LabAFull,
            Caller.BFull => TenantServerFixture.LabBFull,
            Caller.Admin => TenantServerFixture.Admin,
            _ => null,
        });
        using var request = new HttpRequestMessage(new HttpMethod(method), path) { Content = content };
        if (tenant is not null)
        {
            request.Headers.Add(Pipelines.Server.Access.Access.TenantHeader, tenant);
        }

        using var response = await http.SendAsync(request);
        return (response.StatusCode, await response.Content.ReadAsStringAsync());
    }

    /// <summary>
    /// The body without what differs from request to request: a problem's traceId, or for a
    /// dashboard page the layout around its content (it names the time it was drawn).
    /// </summary>
    private static string Comparable(string pattern, string body)
    {
        if (!pattern.StartsWith(DashboardSetup.Path, StringComparison.Ordinal))
        {
            return TraceId().Replace(body, "");
        }

        var start = body.IndexOf("<h1 class=\"page-header\">", StringComparison.Ordinal);
        var end = start < 0 ? -1 : body.IndexOf("</div></div></div>", start, StringComparison.Ordinal);
        return start < 0 || end < 0 ? body : body[start..end];
    }

    /// <summary>The server's route table, as `pipelines server` builds it with tenants (built, not started).</summary>
    private static IReadOnlyList<Endpoint> ReadRouteTable()
    {
        var config = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Server:Urls"] = "http://127.0.0.1:0",
            ["Tenants:lab-a:Output"] = "s3://matrix/lab-a/",
            ["Tenants:lab-b:Output"] = "s3://matrix/lab-b/",
            ["Server:Keys:0:Key"] = TenantServerFixture.Admin,
            ["Server:Keys:0:Role"] = "admin",
        }).Build();
        var app = PipelinesServer.Build(config);
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

    /// <summary>
    /// Hangfire's own routes (DashboardRoutes.Routes), read by reflection here only: Hangfire keeps
    /// them private. A Hangfire that renames its list fails this loudly, so that the gate is re-checked.
    /// </summary>
    private static IReadOnlyList<(string Route, string Kind)> HangfireRoutes()
    {
        _ = Table.Value;
        var field = typeof(Hangfire.Dashboard.RouteCollection).GetField("_dispatchers", BindingFlags.NonPublic | BindingFlags.Instance)
            ?? throw new InvalidOperationException("Hangfire's RouteCollection has no _dispatchers field any more: read its routes anew and check DashboardSetup's gate against them");
        var list = (IEnumerable<Tuple<string, IDashboardDispatcher>>)field.GetValue(DashboardRoutes.Routes)!;
        return list.Select(t => (t.Item1, t.Item2.GetType().Name)).ToList();
    }

    /// <summary>A path one of Hangfire's route regexes matches: its named groups filled, [0-9]+ a digit.</summary>
    private static string SamplePath(string route)
    {
        var path = Regex.Replace(route, @"\(\?<(\w+)>[^)]*\)", m => m.Groups[1].Value == "JobId" ? "0" : "default").Replace("[0-9]+", "0", StringComparison.Ordinal);
        Assert.Matches("^" + route + "$", path);
        return path;
    }

    [GeneratedRegex(@"\{\**(\w+)\}")]
    private static partial Regex Parameter();

    [GeneratedRegex(",?\"traceId\":\"[0-9a-f-]+\"")]
    private static partial Regex TraceId();
}
