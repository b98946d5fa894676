using Microsoft.Extensions.Configuration;
using Pipelines.Model;

namespace Pipelines.Functions;

/// <summary>The functions' settings (configuration section Functions), read once at start.</summary>
public sealed record FunctionsOptions(string Output, InvocationRetention Retention, long MaxResponseBytes, TimeSpan PruneInterval)
{
    /// <summary>Shadow copies waiting to run in one process (Functions:ShadowQueue); one more is dropped, counted and recorded.</summary>
    public int ShadowQueue { get; init; } = 100;

    /// <summary>Shadow copies run at once by one process (Functions:ShadowConcurrency).</summary>
    public int ShadowConcurrency { get; init; } = 2;

    /// <summary>How often a process that serves functions looks that each keeps its min_warm containers (Functions:KeepWarmInterval).</summary>
    public TimeSpan KeepWarmInterval { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>How long the invoke path serves a function's current version before it reads the store again (Functions:CurrentVersionCache).</summary>
    public TimeSpan CurrentVersionCache { get; init; } = TimeSpan.FromSeconds(1);

    public static FunctionsOptions From(IConfiguration config)
    {
        var section = config.GetSection("Functions");
        var home = Environment.GetEnvironmentVariable("PIPELINES_HOME") is { Length: > 0 } h
            ? h
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".local", "state", "pipelines");
        var keep = section.GetValue("KeepInvocations", InvocationRetention.Default.Keep);
        if (keep < 1)
        {
            throw new PipelinesException($"Functions:KeepInvocations is {keep}; keep at least 1 invocation", retryHelps: false);
        }

        var keepFor = InvocationRetention.Default.KeepFor;
        if (section["KeepInvocationsFor"] is { Length: > 0 } text && (!Quantities.TryParseDuration(text, out keepFor) || keepFor <= TimeSpan.Zero))
        {
            throw new PipelinesException($"Functions:KeepInvocationsFor is '{text}', not a duration (e.g. 30d, 12h)", retryHelps: false);
        }

        var maxResponse = 1024L * 1024 * 1024;
        if (section["MaxResponseSize"] is { Length: > 0 } size && (!Quantities.TryParseSize(size, out maxResponse) || maxResponse <= 0))
        {
            throw new PipelinesException($"Functions:MaxResponseSize is '{size}', not a size (e.g. 100Mi, 1Gi)", retryHelps: false);
        }

        var shadowQueue = section.GetValue("ShadowQueue", 100);
        var shadowConcurrency = section.GetValue("ShadowConcurrency", 2);
        if (shadowQueue < 1 || shadowConcurrency < 1)
        {
            throw new PipelinesException($"Functions:ShadowQueue is {shadowQueue} and Functions:ShadowConcurrency {shadowConcurrency}; both must be at least 1", retryHelps: false);
        }

        var keepWarm = section.GetValue("KeepWarmInterval", TimeSpan.FromSeconds(10));
        if (keepWarm <= TimeSpan.Zero)
        {
            throw new PipelinesException($"Functions:KeepWarmInterval is {keepWarm}; write a time above zero (e.g. 00:00:10)", retryHelps: false);
        }

        var currentFor = section.GetValue("CurrentVersionCache", TimeSpan.FromSeconds(1));
        if (currentFor < TimeSpan.Zero)
        {
            throw new PipelinesException($"Functions:CurrentVersionCache is {currentFor}; write zero (read the store on every invocation) or a time above it (e.g. 00:00:01)", retryHelps: false);
        }

        return new FunctionsOptions(
            section["Output"] is { Length: > 0 } output ? output : Path.Combine(home, "functions"),
            new InvocationRetention(keep, keepFor),
            maxResponse,
            section.GetValue("PruneInterval", TimeSpan.FromMinutes(1)))
        {
            ShadowQueue = shadowQueue,
            ShadowConcurrency = shadowConcurrency,
            KeepWarmInterval = keepWarm,
            CurrentVersionCache = currentFor,
        };
    }
}
