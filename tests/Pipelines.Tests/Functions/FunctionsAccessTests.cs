using System.Net;
using System.Net.Http.Headers;
using System.Text;
using Pipelines.Tests.Server;

namespace Pipelines.Tests.Functions;

/// <summary>With keys configured: reading functions needs a read key; deploying, deleting and invoking a full key.</summary>
[Collection(ServerCollection.Name)]
[Integration]
public sealed class FunctionsAccessTests(KeyedServerFixture fixture)
{
    public enum Caller { NoKey, ReadKey, FullKey }

    public static TheoryData<string, string, bool, Caller> Matrix()
    {
        (string Method, string Path, bool Changes)[] endpoints =
        [
            ("GET", "/api/functions", false),
            ("GET", "/api/functions/nope", false),
            ("GET", "/api/functions/nope/invocations", false),
            ("GET", "/api/functions/nope/invocations/x", false),
            ("GET", "/api/functions/nope/invocations/x/output", false),
            ("POST", "/api/functions", true),
            ("DELETE", "/api/functions/nope", true),
            ("POST", "/api/functions/nope/invoke", true),
            ("POST", "/api/functions/nope/invoke?async=true", true),
        ];
        var data = new TheoryData<string, string, bool, Caller>();
        foreach (var (method, path, changes) in endpoints)
        {
            foreach (var caller in Enum.GetValues<Caller>())
            {
                data.Add(method, path, changes, caller);
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Matrix))]
    public async Task Each_function_endpoint_answers_each_caller_as_its_role_allows(string method, string path, bool changes, Caller caller)
    {
        using var http = fixture.Server.Client();
        using var request = new HttpRequestMessage(new HttpMethod(method), path);
        if (method == "POST")
        {
            request.Content = new StringContent("name: x\n", Encoding.UTF8, "application/yaml");
        }

        if (caller != Caller.NoKey)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", caller == Caller.ReadKey ? ServerFixture.ReadKey : ServerFixture.FullKey);
        }

        using var response = await http.SendAsync(request);

        var expected = caller switch
        {
            Caller.NoKey => HttpStatusCode.Unauthorized,
            Caller.ReadKey when changes => HttpStatusCode.Forbidden,

            // Past access control: the function does not exist, or the file is not valid.
            _ => path == "/api/functions" && method == "POST" ? HttpStatusCode.BadRequest
                : path == "/api/functions" ? HttpStatusCode.OK
                : HttpStatusCode.NotFound,
        };
        Assert.Equal(expected, response.StatusCode);
    }
}
