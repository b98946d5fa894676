using Microsoft.Extensions.Configuration;
using Pipelines.Hosting;
using Pipelines.Settings;
using Pipelines.Tests.Support;

namespace Pipelines.Tests.Hosting;

/// <summary>Every setting is read once, by one binder, and a value it cannot use stops the process at start with one line.</summary>
[Integration]
public sealed class SettingsTests
{
    private static IConfiguration Config(params (string Key, string Value)[] values) =>
        new ConfigurationBuilder().AddInMemoryCollection(values.Select(v => new KeyValuePair<string, string?>(v.Key, v.Value))).Build();

    [Theory]
    [InlineData("Worker:Concurrency", "four", "Worker:Concurrency: 'four' is not a whole number")]
    [InlineData("Worker:Concurrency", "-1", "Worker:Concurrency: '-1' is not zero or more")]
    [InlineData("Worker:CancelPollInterval", "soon", "Worker:CancelPollInterval: 'soon' is not a duration (e.g. 5s, 2m, 1h30m)")]
    [InlineData("Worker:MaxOutputBytes", "lots", "Worker:MaxOutputBytes: 'lots' is not a size (e.g. 256Mi, 10Gi) or a number of bytes")]
    [InlineData("Worker:HealthPort", "ninety", "Worker:HealthPort: 'ninety' is not a port number (0 for any free one) or off")]
    [InlineData("Harvest:Policy", "sometimes", "Harvest:Policy: 'sometimes' is not one of always, when-idle, never")]
    [InlineData("Harvest:StartBelow", "1.5", "Harvest:StartBelow: '1.5' is not between 0 and 1")]
    [InlineData("Hangfire:InvisibilityTimeout", "-00:05:00", "Hangfire:InvisibilityTimeout: '-00:05:00' is not above zero")]
    [InlineData("Hangfire:RetryDelays:1", "x", "Hangfire:RetryDelays:1: 'x' is not a whole number of seconds above zero")]
    [InlineData("Schema", "Runs; DROP", "Schema: 'Runs; DROP' is not a PostgreSQL schema name (lower-case letters, digits and _)")]
    [InlineData("Telemetry:QueueMetrics", "yes", "Telemetry:QueueMetrics: 'yes' is not true or false")]
    [InlineData("Telemetry:Otlp:Protocol", "udp", "Telemetry:Otlp:Protocol: 'udp' is not one of grpc, http/protobuf")]
    [InlineData("Algorithms:Canary:MaxP95Ratio", "0.5", "Algorithms:Canary:MaxP95Ratio: '0.5' is not at least 1")]
    [InlineData("Functions:KeepInvocationsFor", "forever", "Functions:KeepInvocationsFor: 'forever' is not a duration (e.g. 5s, 2m, 1h30m)")]
    [InlineData("Triggers:MaxObjectsPerRun", "-1", "Triggers:MaxObjectsPerRun: '-1' is not above zero")]
    [InlineData("Docker:CgroupParent", "system.slice", "Docker:CgroupParent: 'system.slice' is not a cgroup of our own: not the root, nor -.slice, system.slice, user.slice, machine.slice or init.scope, which systemd owns (write e.g. pipelines)")]
    [InlineData("Docker:CgroupParent", "/user.slice/pipelines", "Docker:CgroupParent: '/user.slice/pipelines' is not a cgroup of our own: not the root, nor -.slice, system.slice, user.slice, machine.slice or init.scope, which systemd owns (write e.g. pipelines)")]
    [InlineData("Docker:CgroupParent", "-.slice", "Docker:CgroupParent: '-.slice' is not a cgroup of our own: not the root, nor -.slice, system.slice, user.slice, machine.slice or init.scope, which systemd owns (write e.g. pipelines)")]
    [InlineData("Docker:CgroupParent", "machine.slice", "Docker:CgroupParent: 'machine.slice' is not a cgroup of our own: not the root, nor -.slice, system.slice, user.slice, machine.slice or init.scope, which systemd owns (write e.g. pipelines)")]
    [InlineData("Docker:CgroupParent", "/init.scope", "Docker:CgroupParent: '/init.scope' is not a cgroup of our own: not the root, nor -.slice, system.slice, user.slice, machine.slice or init.scope, which systemd owns (write e.g. pipelines)")]
    [InlineData("Docker:CgroupParent", "/", "Docker:CgroupParent: '/' is not a cgroup of our own: not the root, nor -.slice, system.slice, user.slice, machine.slice or init.scope, which systemd owns (write e.g. pipelines)")]
    public void A_setting_it_cannot_use_stops_the_host_before_it_starts_naming_the_setting(string key, string value, string message)
    {
        var e = Assert.Throws<PipelinesException>(() => EngineHost.Build(Config((key, value)), worker: false));
        Assert.Equal(message, e.Message);
        Assert.False(e.RetryHelps);
    }

    [Fact]
    public void A_duration_reads_the_same_written_as_in_a_workflow_or_as_a_timespan()
    {
        var quantity = EngineSettings.Read(Config(("Worker:LeaseDuration", "1m30s"), ("Hangfire:ServerTimeout", "45s")));
        var timespan = EngineSettings.Read(Config(("Worker:LeaseDuration", "00:01:30"), ("Hangfire:ServerTimeout", "00:00:45")));
        Assert.Equal(TimeSpan.FromSeconds(90), quantity.Worker.LeaseDuration);
        Assert.Equal(quantity.Worker.LeaseDuration, timespan.Worker.LeaseDuration);
        Assert.Equal(TimeSpan.FromSeconds(45), timespan.Hangfire.ServerTimeout);
        Assert.Equal(quantity.Hangfire.ServerTimeout, timespan.Hangfire.ServerTimeout);
    }

    [Fact]
    public void A_size_reads_as_a_quantity_or_as_bytes()
    {
        Assert.Equal(512L * 1024 * 1024, EngineSettings.Read(Config(("Worker:MaxOutputBytes", "512Mi"))).Worker.MaxOutputBytes);
        Assert.Equal(1000L, EngineSettings.Read(Config(("Worker:MaxOutputBytes", "1000"))).Worker.MaxOutputBytes);
    }

    [Fact]
    public void Unset_settings_take_the_one_default_their_options_type_writes()
    {
        var settings = EngineSettings.Read(Config());
        Assert.Equal(new Pipelines.Worker.WorkerOptions().Concurrency, settings.Worker.Concurrency);
        Assert.Equal("pipelines", settings.Database.Schema);
        Assert.Equal("hangfire", settings.Hangfire.Schema);
        Assert.Equal("always", settings.Harvest.Policy);
        Assert.False(settings.Docker.IdleClass);
        Assert.False(settings.Telemetry.QueueMetrics);
        Assert.Equal([5, 15, 30, 60, 120, 300, 300, 600, 600, 900], settings.Hangfire.RetryDelays);
    }

    [Fact]
    public void A_role_default_lies_under_every_source_the_user_writes()
    {
        // `pipelines worker` defaults to when-idle; a configured policy still wins over that default.
        Assert.Equal("when-idle", EngineSettings.Read(EngineHost.WithDefaults(Config(), Pipelines.Harvest.HarvestOptions.WorkerDefaults)).Harvest.Policy);
        Assert.Equal("never", EngineSettings.Read(EngineHost.WithDefaults(Config(("Harvest:Policy", "never")), Pipelines.Harvest.HarvestOptions.WorkerDefaults)).Harvest.Policy);
        Assert.True(EngineSettings.Read(EngineHost.WithDefaults(Config(), Pipelines.Telemetry.TelemetryOptions.ServerDefaults)).Telemetry.QueueMetrics);
        Assert.True(EngineSettings.Read(EngineHost.WithDefaults(Config(), Pipelines.Harvest.HarvestOptions.WorkerDefaults)).Docker.IdleClass);
    }

    [Fact]
    public void Retry_delays_are_read_in_order_and_the_last_repeats()
    {
        var settings = EngineSettings.Read(Config(("Hangfire:Retries", "4"), ("Hangfire:RetryDelays:0", "1"), ("Hangfire:RetryDelays:1", "2")));
        Assert.Equal([1, 2, 2, 2], EngineHost.RetryPolicy(settings.Hangfire).DelaysInSeconds);
    }

    [Fact]
    public async Task The_cli_stops_at_start_with_one_line_naming_the_setting()
    {
        var workflow = Path.Combine(TestEnvironment.RepoRoot, "workflows", "fastq-stats.yaml");
        var result = await CliRunner.RunAsync(["run", workflow], new Dictionary<string, string?> { ["PIPELINES_Hangfire__InvisibilityTimeout"] = "soon" }, TimeSpan.FromMinutes(1));
        Assert.Equal(1, result.ExitCode);
        Assert.Equal("error: Hangfire:InvisibilityTimeout: 'soon' is not a duration (e.g. 5s, 2m, 1h30m)", result.Stderr.Trim());
    }

    [Fact]
    public void Durations_are_documented_in_the_workflow_form()
    {
        Assert.Equal("5s", SettingsBinder.FormatDuration(TimeSpan.FromSeconds(5)));
        Assert.Equal("1h30m", SettingsBinder.FormatDuration(TimeSpan.FromMinutes(90)));
        Assert.Equal("30d", SettingsBinder.FormatDuration(TimeSpan.FromDays(30)));
        Assert.True(SettingsBinder.TryParseDuration(SettingsBinder.FormatDuration(TimeSpan.FromMinutes(90)), out var back));
        Assert.Equal(TimeSpan.FromMinutes(90), back);
    }
}
