using Hangfire.Logging;
using Microsoft.Extensions.Logging;

namespace Pipelines.Hosting;

/// <summary>
/// Hangfire's log provider for a host. Hangfire keeps its provider in a static field, set by
/// whichever host of the process last wired Hangfire; once that host is disposed its logger
/// factory is too, and a Hangfire type made later (a second host's storage, whose static
/// installer asks for a logger in its type initializer) would fail to initialize for the rest of
/// the process on the disposed factory. A logger asked of a disposed host's factory is therefore
/// none; a live host's Hangfire lines go to its own logging as Hangfire's own provider sends them.
/// </summary>
internal sealed class HangfireLogs(ILoggerFactory factory) : ILogProvider
{
    private readonly Hangfire.AspNetCore.AspNetCoreLogProvider _inner = new(factory);

    public ILog GetLogger(string name)
    {
        try
        {
            return _inner.GetLogger(name);
        }
        catch (ObjectDisposedException)
        {
            // The host that set this provider is gone: its lines have nowhere to go.
            return None.Instance;
        }
    }

    private sealed class None : ILog
    {
        public static readonly None Instance = new();

        public bool Log(Hangfire.Logging.LogLevel logLevel, Func<string>? messageFunc, Exception? exception = null) => false;
    }
}
