using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace Pipelines.Functions;

/// <summary>The functions' wiring, kept out of EngineHost: one call there adds all of it (the store is EngineHost's choice: PostgreSQL or in memory).</summary>
internal static class FunctionHosting
{
    /// <summary>
    /// The invoker, service and async job. The warm pool (IWarmPool) is registered by the
    /// pool's own wiring; without one, invocations are refused with 503 and a reason.
    /// </summary>
    public static void Add(IServiceCollection services, IConfiguration config)
    {
        services.AddSingleton(FunctionsOptions.From(config));
        services.AddSingleton<FunctionInvoker>();
        services.AddSingleton<FunctionRouter>();
        services.AddSingleton<CanaryGuard>();
        services.AddSingleton<ShadowRunner>();
        services.AddHostedService(sp => sp.GetRequiredService<ShadowRunner>());
        services.AddSingleton<FunctionService>();
        services.AddTransient<FunctionJob>();
    }
}
