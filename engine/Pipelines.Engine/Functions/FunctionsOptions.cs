using Microsoft.Extensions.Configuration;
using Pipelines.Settings;

namespace Pipelines.Functions;

/// <summary>The functions' settings (configuration section Functions), read once at start by <see cref="SettingsBinder"/>.</summary>
public sealed record FunctionsOptions
{
    /// <summary>Where async invocations keep their inputs and outputs: a folder, or s3:// when workers run on other machines.</summary>
    [DefaultText("$PIPELINES_HOME/functions")]
    public string Output { get; init; } = Path.Combine(PipelinesHome.Folder, "functions");

    /// <summary>The newest invocations kept.</summary>
    [Positive]
    public int KeepInvocations { get; init; } = InvocationRetention.Default.Keep;

    /// <summary>Invocations older than this are pruned.</summary>
    [Positive]
    public TimeSpan KeepInvocationsFor { get; init; } = InvocationRetention.Default.KeepFor;

    /// <summary>The largest response body an http-mode function may send.</summary>
    [Bytes]
    [Positive]
    public long MaxResponseSize { get; init; } = 1024L * 1024 * 1024;

    /// <summary>How often one process prunes invocations.</summary>
    [Positive]
    public TimeSpan PruneInterval { get; init; } = TimeSpan.FromMinutes(1);

    /// <summary>Shadow copies waiting to run in one process (Functions:ShadowQueue); one more is dropped, counted and recorded.</summary>
    [Positive]
    public int ShadowQueue { get; init; } = 100;

    /// <summary>Shadow copies run at once by one process (Functions:ShadowConcurrency).</summary>
    [Positive]
    public int ShadowConcurrency { get; init; } = 2;

    /// <summary>How often a process that serves functions looks that each keeps its min_warm containers (Functions:KeepWarmInterval).</summary>
    [Positive]
    public TimeSpan KeepWarmInterval { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>How long the invoke path serves a function's current version before it reads the store again (Functions:CurrentVersionCache); 0s reads it on every invocation.</summary>
    [AtLeastZero]
    public TimeSpan CurrentVersionCache { get; init; } = TimeSpan.FromSeconds(1);

    public InvocationRetention Retention => new(KeepInvocations, KeepInvocationsFor);

    public long MaxResponseBytes => MaxResponseSize;

    public static FunctionsOptions From(IConfiguration config) => SettingsBinder.Bind<FunctionsOptions>(config, "Functions");
}
