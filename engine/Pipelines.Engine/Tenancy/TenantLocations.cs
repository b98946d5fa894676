using Pipelines.Model;
using Pipelines.Storage;

namespace Pipelines.Tenancy;

/// <summary>
/// The one home of the rule of where a tenant's workflows may read and write (docs/tenants.md):
/// input.uri, input.samplesheet and trigger.uri under the tenant's output or input folders,
/// output.uri under its output folder. Folders are compared segment by segment, so
/// <c>s3://data/lab-a/</c> does not admit <c>s3://data/lab-ab/</c>. A refusal names the field
/// and this tenant's own folders, never whose another folder is.
/// </summary>
internal static class TenantLocations
{
    /// <summary>
    /// A location as a folder URI: <c>s3://bucket/prefix/</c> (a trailing <c>/</c> added) or an
    /// absolute local path made full, its links resolved (<see cref="LocalPaths.Resolve"/>), and ending in <c>/</c>. Null when it is neither, or when an
    /// s3 key has a <c>.</c> or <c>..</c> segment or an empty one (S3 keeps them literally, and
    /// a reader that resolves them would leave the folder).
    /// </summary>
    public static string? Folder(string uri)
    {
        if (uri.StartsWith("s3://", StringComparison.Ordinal))
        {
            var rest = uri["s3://".Length..].TrimEnd('/');
            var segments = rest.Split('/');
            if (segments[0].Length == 0 || segments.Any(s => s is "" or "." or ".."))
            {
                return null;
            }

            return "s3://" + rest + "/";
        }

        if (uri.StartsWith("file://", StringComparison.Ordinal))
        {
            uri = uri["file://".Length..];
        }

        // Links resolved as Submit:LocalRoots resolves them: a link inside a tenant's folder to another's leads there.
        return Path.IsPathFullyQualified(uri) ? LocalPaths.Resolve(uri).TrimEnd('/') + "/" : null;
    }

    /// <summary>Whether <paramref name="inner"/> is <paramref name="outer"/> or inside it (both folders as <see cref="Folder"/> writes them).</summary>
    public static bool Within(string inner, string outer) => inner.StartsWith(outer, StringComparison.Ordinal);

    /// <summary>Whether either folder holds the other: two tenants' folders may not (checked at start by <see cref="TenantOptions.From"/>).</summary>
    public static bool Overlaps(string a, string b) => Within(a, b) || Within(b, a);

    /// <summary>
    /// Refuses (<see cref="WorkflowInvalidException"/>, one problem per field) a workflow of
    /// <paramref name="tenant"/> that names a location it may not use. A server without tenants
    /// checks nothing here (Submit:LocalRoots still applies).
    /// </summary>
    public static void Check(Workflow workflow, TenantId tenant, TenantOptions options)
    {
        if (!options.Configured)
        {
            return;
        }

        var own = options.Settings(tenant);
        var problems = new List<WorkflowProblem>();
        foreach (var (field, uri, output) in workflow.Locations())
        {
            Add(field, uri, output);
        }

        if (problems.Count > 0)
        {
            throw new WorkflowInvalidException("the submitted workflow", problems);
        }

        void Add(string field, string? uri, bool output)
        {
            if (uri is null || Problem(uri, own, options, output) is not { } problem)
            {
                return;
            }

            problems.Add(new WorkflowProblem(field, problem, 0, 0));
        }
    }

    private static string? Problem(string uri, TenantSettings own, TenantOptions options, bool output)
    {
        if (Folder(uri) is not { } folder)
        {
            return $"'{uri}' is not a location a tenant may use: write s3://bucket/prefix/ or an absolute folder, without . or .. segments";
        }

        if (own.Output is null)
        {
            // The default tenant without folders of its own: anywhere but inside (or around) another tenant's.
            return options.All.Where(t => t.Id != own.Id).SelectMany(t => t.Locations).Any(l => Overlaps(folder, l))
                ? $"'{uri}' is inside or around a location reserved for another tenant of this server"
                : null;
        }

        var allowed = output ? [own.Output] : own.Locations.ToList();
        return allowed.Any(l => Within(folder, l))
            ? null
            : $"'{uri}' is outside this tenant's {(output ? "output location" : "locations")}; allowed {(allowed.Count == 1 ? "is" : "are")}: {string.Join(", ", allowed)} (Tenants:{own.Id})";
    }
}
