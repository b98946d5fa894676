using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Http;

namespace Pipelines.Server.Api;

/// <summary>
/// A request refused while its parameters are bound (a tenant an admin key names that this server
/// does not have, a tenant name that is not one: Access/TenantContext) answers with the exception's
/// status and its message as the problem's detail, as every other refusal of the API does, instead
/// of the exception handler's bare 500.
/// </summary>
internal sealed class BadRequestAnswer(IProblemDetailsService problems) : IExceptionHandler
{
    public async ValueTask<bool> TryHandleAsync(HttpContext httpContext, Exception exception, CancellationToken cancellationToken)
    {
        if (exception is not BadHttpRequestException bad || httpContext.Response.HasStarted)
        {
            return false;
        }

        httpContext.Response.StatusCode = bad.StatusCode;
        return await problems.TryWriteAsync(new ProblemDetailsContext
        {
            HttpContext = httpContext,
            Exception = exception,
            ProblemDetails = { Status = bad.StatusCode, Detail = bad.Message },
        }).ConfigureAwait(false);
    }
}
