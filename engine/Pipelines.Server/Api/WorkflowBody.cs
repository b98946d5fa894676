using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Pipelines.Model;

namespace Pipelines.Server.Api;

/// <summary>
/// A workflow sent to the API: a JSON body {workflow, set, process_existing}, or the YAML itself
/// with ?set=key=value (and ?process_existing=true) in the query. One reader for runs and
/// registrations, and one mapping of refusals to problem details.
/// </summary>
internal sealed record WorkflowBody(string Yaml, IReadOnlyList<string> Set, bool ProcessExisting)
{
    /// <summary>A batch canary's flags (JSON fields, or ?candidate=, ?sample=, ?tolerance= beside a YAML body); checked by CanaryRequest.Parse.</summary>
    public (string? Candidate, string? Sample, double? Tolerance) Canary { get; init; }

    /// <summary>The body, or a 400 problem saying what is wrong with it.</summary>
    public static async Task<(WorkflowBody? Body, ProblemHttpResult? Problem)> ReadAsync(HttpRequest request, string what, CancellationToken ct)
    {
        var set = request.Query["set"].Where(s => s is not null).Select(s => s!).ToList();
        var processExisting = string.Equals(request.Query["process_existing"], "true", StringComparison.OrdinalIgnoreCase);
        if (!request.HasJsonContentType())
        {
            double? tolerance = null;
            if (request.Query["tolerance"].FirstOrDefault() is { } t)
            {
                if (!double.TryParse(t, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var parsed))
                {
                    return (null, TypedResults.Problem(statusCode: 400, title: $"The {what} has a bad parameter", detail: $"tolerance '{t}' is not a number, e.g. 1e-9"));
                }

                tolerance = parsed;
            }

            using var reader = new StreamReader(request.Body, Encoding.UTF8);
            return (new WorkflowBody(await reader.ReadToEndAsync(ct), set, processExisting) { Canary = (request.Query["candidate"].FirstOrDefault(), request.Query["sample"].FirstOrDefault(), tolerance) }, null);
        }

        SubmitRunRequest? body;
        try
        {
            body = await request.ReadFromJsonAsync<SubmitRunRequest>(ct);
        }
        catch (JsonException e)
        {
            return (null, TypedResults.Problem(statusCode: 400, title: $"The body is not a {what}", detail: "expected JSON {\"workflow\": \"<yaml>\", \"set\": [\"key=value\"]}: " + e.Message));
        }

        if (body is null || string.IsNullOrWhiteSpace(body.Workflow))
        {
            return (null, TypedResults.Problem(statusCode: 400, title: $"The body is not a {what}", detail: "the field workflow (the workflow YAML) is missing"));
        }

        return (new WorkflowBody(body.Workflow, [.. set, .. body.Set ?? []], processExisting || body.ProcessExisting) { Canary = (body.Candidate, body.Sample, body.Tolerance) }, null);
    }

    /// <summary>
    /// 400 with every problem of an invalid workflow; 422 when it cannot start (input, image,
    /// bucket, credential); 503 when a service is out of reach.
    /// </summary>
    public static ProblemHttpResult Refusal(PipelinesException e, string notDone) => e is WorkflowInvalidException invalid
        ? TypedResults.Problem(
            statusCode: 400,
            title: "The workflow is not valid",
            detail: $"{invalid.Problems.Count} problem{(invalid.Problems.Count == 1 ? "" : "s")}: " + string.Join("; ", invalid.Problems),
            extensions: new Dictionary<string, object?> { ["problems"] = invalid.Problems.Select(ProblemView.From).ToList() })
        : TypedResults.Problem(statusCode: e.RetryHelps ? 503 : 422, title: notDone, detail: e.Message);
}
