using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Pipelines.Algorithms;
using Pipelines.Containers;
using Pipelines.Containers.Warm;
using Pipelines.Queue;
using Pipelines.Quotas;
using Pipelines.Storage;
using Pipelines.Tenancy;

namespace Pipelines.Functions;

/// <summary>The functions' wiring, kept out of EngineHost: one call there adds all of it (the store is EngineHost's choice: PostgreSQL or in memory).</summary>
internal static class FunctionHosting
{
    /// <summary>
    /// The invoker, service and async job. The warm pool (IWarmPool) is registered by the
    /// pool's own wiring; without one, invocations are refused with 503 and a reason.
    /// </summary>
    /// <remarks>
    /// <paramref name="keepWarm"/>: this process serves functions (the server's api or worker role,
    /// `pipelines worker`), so it keeps their min_warm containers (<see cref="WarmKeeper"/>); a
    /// `pipelines run` or `status` does not.
    /// </remarks>
    public static void Add(IServiceCollection services, FunctionsOptions options, bool keepWarm)
    {
        services.AddSingleton(options);

        // The store EngineHost chose, behind the invocation log that writes synchronous invocations' records in batches.
        var chosen = services.LastOrDefault(d => d.ServiceType == typeof(IFunctionStore))
            ?? throw new InvalidOperationException("functions need a function store (IFunctionStore) registered first");
        services.Remove(chosen);
        services.AddSingleton(sp => new InvocationLog(
            chosen.ImplementationInstance as IFunctionStore
                ?? (IFunctionStore?)chosen.ImplementationFactory?.Invoke(sp)
                ?? (IFunctionStore)ActivatorUtilities.CreateInstance(sp, chosen.ImplementationType!),
            sp.GetRequiredService<ILogger<InvocationLog>>()));
        services.AddSingleton<IFunctionStore>(sp => sp.GetRequiredService<InvocationLog>());
        services.AddHostedService(sp => sp.GetRequiredService<InvocationLog>());
        services.AddSingleton(sp => new FunctionInvoker(
            sp.GetRequiredService<Worker.AttemptShell>(), sp.GetRequiredService<Worker.WorkerOptions>(), sp.GetRequiredService<FunctionsOptions>(), sp.GetRequiredService<ILogger<FunctionInvoker>>()));
        services.AddSingleton<FunctionRouter>();
        services.AddSingleton<CanaryGuard>();
        services.AddSingleton<ShadowRunner>();
        services.AddHostedService(sp => sp.GetRequiredService<ShadowRunner>());
        services.AddSingleton(sp => new FunctionService(
            sp.GetRequiredService<InvocationLog>(), sp.GetRequiredService<IContainerRuntime>(), sp.GetRequiredService<FunctionInvoker>(), sp.GetRequiredService<FunctionsOptions>(),
            sp.GetRequiredService<ObjectStoreFactory>(), sp.GetRequiredService<Worker.WorkerOptions>(), sp.GetRequiredService<FunctionRouter>(), sp.GetRequiredService<ShadowRunner>(),
            sp.GetRequiredService<CanaryGuard>(), sp.GetRequiredService<IInvocationQueue>(), sp.GetRequiredService<TimeProvider>(), sp.GetService<WarmKeeper>(),
            sp.GetService<IWarmPool>(), sp.GetService<AlgorithmService>(), sp.GetService<IAlgorithmStore>(), sp.GetService<TenantOptions>(),
            sp.GetService<TenantQuotas>()));
        services.AddSingleton<IInvocationHandler>(sp => sp.GetRequiredService<FunctionService>());
        services.AddSingleton<IInvocationQueue, HangfireInvocationQueue>();
        services.AddSingleton<IInvocationBacklog>(sp => sp.GetRequiredService<InvocationLog>());
        services.AddSingleton(sp => new InvocationRelease(sp.GetRequiredService<IInvocationBacklog>(), sp.GetRequiredService<IInvocationQueue>()));
        services.AddTransient<InvocationJob>();
        if (keepWarm)
        {
            services.AddSingleton<WarmKeeper>();
            services.AddHostedService(sp => sp.GetRequiredService<WarmKeeper>());
        }
    }
}
