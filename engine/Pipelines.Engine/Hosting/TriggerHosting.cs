using Hangfire;
using Microsoft.Extensions.DependencyInjection;
using Pipelines.Queue;
using Pipelines.Triggers;
using Pipelines.Worker;

namespace Pipelines.Hosting;

/// <summary>The triggers' wiring, kept out of EngineHost: one call there adds all of it (the store is EngineHost's choice: PostgreSQL or in memory), their reconciliation jobs kept by the queue (<see cref="IRecurringJobs"/>).</summary>
internal static class TriggerHosting
{
    /// <summary>
    /// Event ingest and registration (needed by the CLI's trigger commands and the web server);
    /// with <paramref name="role"/>, also the trigger loop and a Hangfire
    /// server for the "triggers" queue that runs the reconciliation jobs.
    /// </summary>
    public static void Add(IServiceCollection services, TriggerOptions options, bool role)
    {
        services.AddSingleton(options);
        services.AddSingleton<S3EventIngest>();
        services.AddSingleton(sp => new TriggerRegistrar(
            sp.GetRequiredService<ITriggerStore>(), sp.GetRequiredService<Storage.ObjectStoreFactory>(), sp.GetRequiredService<IRecurringJobs>(), sp.GetRequiredService<TriggerOptions>(),
            sp.GetRequiredService<Runs.LocalRoots>(), sp.GetRequiredService<Tenancy.TenantOptions>(), sp.GetRequiredService<TimeProvider>()));
        services.AddSingleton<ITriggerRunStarter, SubmitterRunStarter>();
        services.AddSingleton<TriggerCycle>();
        services.AddSingleton<IRecurringJobs, HangfireRecurringJobs>();
        services.AddTransient<ScheduledJob>();
        services.AddTransient<IRecurringHandler, TriggerJob>();
        if (!role)
        {
            return;
        }

        services.AddHostedService<TriggerService>();
        services.AddHangfireServer((sp, o) =>
        {
            o.ServerName = sp.GetRequiredService<WorkerOptions>().Name + ":triggers";
            o.Queues = [TriggerJob.Queue];
            o.WorkerCount = 1;
            o.SchedulePollingInterval = TimeSpan.FromSeconds(15);
            sp.GetRequiredService<HangfireOptions>().SetServerTimings(o);
        });
    }
}
