using System.Buffers.Binary;
using System.Net.Sockets;
using System.Text;
using Docker.DotNet.Models;
using Pipelines.Containers.Warm;

namespace Pipelines.Tests.Warm;

/// <summary>
/// The fork helper itself against garbage from its side of the socket: each case is a real
/// locked-down container running the helper as PID 1, sent bytes that are not the protocol.
/// It must refuse them with a 'P' frame naming the problem and exit, never run anything.
/// </summary>
[Integration]
public sealed class WarmHelperTests : IAsyncLifetime
{
    private readonly WarmTestContext _context = new();
    private readonly List<string> _containers = [];

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var id in _containers)
        {
            await _context.Runtime.Containers.RemoveAsync(id);
        }

        await _context.DisposeAsync();
    }

    public static TheoryData<string, string> Garbage => new()
    {
        { "length-max", "frame length out of range" },
        { "length-zero", "frame length out of range" },
        { "unknown-type", "unknown frame type" },
        { "short-request", "request too short" },
        { "no-program", "request counts out of range" },
        { "string-past-end", "malformed request strings" },
        { "env-without-equals", "an environment entry is not NAME=VALUE" },
        { "request-while-running", "only a cancel or a timeout may come while a request runs" },
    };

    [Theory]
    [MemberData(nameof(Garbage))]
    public async Task The_helper_refuses_a_frame_outside_the_protocol_and_exits(string garbage, string refusal)
    {
        var (id, socketPath) = await StartHelperAsync();
        using var socket = await UnixSocket.ConnectWhenListeningAsync(socketPath, () => false, Timeout(20));
        var (type, hello) = await ReadFrameAsync(socket);
        Assert.Equal(((byte)'H', WarmProtocol.Hello), (type, Encoding.UTF8.GetString(hello)));

        var request = (byte[] payload) => Frame((byte)'R', payload);
        var bytes = garbage switch
        {
            "length-max" => [0xff, 0xff, 0xff, 0xff, (byte)'R'],
            "length-zero" => [0, 0, 0, 0, (byte)'R'],
            "unknown-type" => Frame((byte)'Z', []),
            "short-request" => request([1, 2, 3]),
            "no-program" => request(Counts(0, 0)),
            "string-past-end" => request([.. Counts(1, 0), .. U32(9)]),
            "env-without-equals" => request([.. Counts(1, 1), .. Str("a"), .. Str("b")]),
            "request-while-running" => (byte[])[.. request([.. Counts(2, 0), .. Str("sleep"), .. Str("30")]), .. request([.. Counts(1, 0), .. Str("true")])],
            _ => throw new ArgumentOutOfRangeException(nameof(garbage)),
        };

        await socket.SendAsync(bytes, SocketFlags.None);
        var (kind, text) = await ReadUntilRefusalAsync(socket);
        Assert.Equal(((byte)'P', refusal), (kind, Encoding.UTF8.GetString(text)));
        var exit = await _context.Docker.Containers.WaitContainerAsync(id, Timeout(20));
        Assert.Equal(2, exit.StatusCode);
    }

    private static byte[] Frame(byte type, byte[] payload) => [.. U32((uint)payload.Length + 1), type, .. payload];

    private static byte[] Counts(uint argc, uint envc) => [.. U32(argc), .. U32(envc)];

    private static byte[] Str(string s) => [.. U32((uint)Encoding.UTF8.GetByteCount(s)), .. Encoding.UTF8.GetBytes(s)];

    private static byte[] U32(uint v)
    {
        var b = new byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(b, v);
        return b;
    }

    private async Task<(string Id, string Socket)> StartHelperAsync()
    {
        var folder = Path.Combine(_context.Root, Guid.NewGuid().ToString("N")[..8]);
        var control = Path.Combine(folder, "run");
        Directory.CreateDirectory(control);
        UnixSocket.Chown(control, "65534:65534");
        var image = await _context.Runtime.Images.ResolveImageAsync(WarmTestContext.ForkImage, CancellationToken.None);
        var parameters = _context.Runtime.LockedDown(new Pipelines.Containers.ContainerSpec(
            image,
            [WarmLayout.Helper, WarmLayout.Control + "/warm.sock"],
            new Dictionary<string, string>(),
            [new(control, WarmLayout.Control, ReadOnly: false), new(WarmTestContext.Helper, WarmLayout.Helper, ReadOnly: true)],
            Pipelines.Model.Resources.Default,
            new Dictionary<string, string> { ["org.pipelines.test"] = "warm-helper" }));
        var id = (await _context.Docker.Containers.CreateContainerAsync(parameters)).ID;
        _containers.Add(id);
        await _context.Docker.Containers.StartContainerAsync(id, new ContainerStartParameters());
        return (id, Path.Combine(control, "warm.sock"));
    }

    private static async Task<(byte Type, byte[] Payload)> ReadUntilRefusalAsync(Socket socket)
    {
        while (true)
        {
            var frame = await ReadFrameAsync(socket);
            if (frame.Type is not ((byte)'O' or (byte)'E'))
            {
                return frame;
            }
        }
    }

    private static async Task<(byte Type, byte[] Payload)> ReadFrameAsync(Socket socket)
    {
        var header = await ReadExactAsync(socket, 5);
        var length = BinaryPrimitives.ReadUInt32LittleEndian(header);
        return (header[4], await ReadExactAsync(socket, (int)length - 1));
    }

    private static async Task<byte[]> ReadExactAsync(Socket socket, int count)
    {
        var buffer = new byte[count];
        var got = 0;
        while (got < count)
        {
            var read = await socket.ReceiveAsync(buffer.AsMemory(got), SocketFlags.None, Timeout(20));
            Assert.True(read > 0, "the helper closed its connection without a refusal");
            got += read;
        }

        return buffer;
    }

    private static CancellationToken Timeout(int seconds) => new CancellationTokenSource(TimeSpan.FromSeconds(seconds)).Token;
}
