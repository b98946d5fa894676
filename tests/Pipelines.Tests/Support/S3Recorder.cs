using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Pipelines.Tests.Support;

/// <summary>
/// An HTTP listener on loopback that answers as an S3 endpoint does and keeps every request it
/// received, so that a test can check what a client really sent (its signature, its session
/// token) and how it reads answers no local S3 server gives (encrypted objects' headers).
/// </summary>
public sealed class S3Recorder : IAsyncDisposable
{
    private readonly HttpListener _listener = new();
    private readonly Func<RecordedRequest, Reply> _answer;
    private readonly Task _loop;

    public S3Recorder(Func<RecordedRequest, Reply> answer)
    {
        _answer = answer;
        var port = FreePort();
        Endpoint = $"http://127.0.0.1:{port}";
        _listener.Prefixes.Add(Endpoint + "/");
        _listener.Start();
        _loop = Task.Run(ServeAsync);
    }

    /// <summary>Where the client should send its requests (AWS_ENDPOINT_URL).</summary>
    public string Endpoint { get; }

    public ConcurrentQueue<RecordedRequest> Requests { get; } = new();

    /// <summary>An empty ListObjectsV2 answer for any listing, an empty bucket list otherwise.</summary>
    public static Reply EmptyListing(RecordedRequest request) =>
        Reply.Xml(request.RawUrl.Contains("list-type=2", StringComparison.Ordinal)
            ? "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Name>b</Name><Prefix></Prefix><KeyCount>0</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated></ListBucketResult>"
            : "<ListAllMyBucketsResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Owner><ID>o</ID></Owner><Buckets></Buckets></ListAllMyBucketsResult>");

    public async ValueTask DisposeAsync()
    {
        _listener.Stop();
        _listener.Close();
        try
        {
            await _loop;
        }
        catch (ObjectDisposedException)
        {
            // Stopped while waiting for a request.
        }
    }

    private async Task ServeAsync()
    {
        while (_listener.IsListening)
        {
            HttpListenerContext context;
            try
            {
                context = await _listener.GetContextAsync();
            }
            catch (HttpListenerException)
            {
                return;
            }

            using var body = new MemoryStream();
            await context.Request.InputStream.CopyToAsync(body);
            var headers = context.Request.Headers.AllKeys.Where(k => k is not null)
                .ToDictionary(k => k!.ToLowerInvariant(), k => context.Request.Headers[k]!, StringComparer.Ordinal);
            var request = new RecordedRequest(context.Request.HttpMethod, context.Request.RawUrl ?? "/", headers, body.ToArray());
            Requests.Enqueue(request);
            var reply = _answer(request);
            context.Response.StatusCode = reply.Status;
            foreach (var (name, value) in reply.Headers)
            {
                context.Response.Headers[name] = value;
            }

            context.Response.ContentLength64 = reply.Body.Length;
            await context.Response.OutputStream.WriteAsync(reply.Body);
            context.Response.Close();
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>One request as it arrived: method, path and query as sent, headers (names lower-case), body.</summary>
    public sealed record RecordedRequest(string Method, string RawUrl, IReadOnlyDictionary<string, string> Headers, byte[] Body)
    {
        public string? Header(string name) => Headers.TryGetValue(name, out var v) ? v : null;
    }

    /// <summary>An answer: status, headers and body.</summary>
    public sealed record Reply(int Status, IReadOnlyList<(string Name, string Value)> Headers, byte[] Body)
    {
        public static Reply Xml(string xml, int status = 200) =>
            new(status, [("Content-Type", "application/xml")], Encoding.UTF8.GetBytes("<?xml version=\"1.0\" encoding=\"UTF-8\"?>" + xml));

        /// <summary>An S3 error document, as S3 sends it.</summary>
        public static Reply Error(int status, string code, string message) =>
            Xml($"<Error><Code>{code}</Code><Message>{message}</Message><RequestId>r</RequestId></Error>", status);
    }
}
