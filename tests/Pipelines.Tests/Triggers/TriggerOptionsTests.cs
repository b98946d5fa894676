using Microsoft.Extensions.Configuration;
using Pipelines.Triggers;

namespace Pipelines.Tests.Triggers;

[Unit]
public sealed class TriggerOptionsTests
{
    private static IConfiguration Config(params (string Key, string Value)[] values) =>
        new ConfigurationBuilder().AddInMemoryCollection(values.Select(v => new KeyValuePair<string, string?>(v.Key, v.Value))).Build();

    [Fact]
    public void Defaults_poll_every_5s_and_reconcile_every_10_minutes()
    {
        var o = TriggerOptions.From(Config());
        Assert.Equal(TimeSpan.FromSeconds(5), o.PollInterval);
        Assert.Equal("*/10 * * * *", o.ReconcileCron());
        Assert.Equal(1000, o.MaxObjectsPerRun);
    }

    [Fact]
    public void Durations_read_as_in_workflow_files_or_as_timespans()
    {
        var o = TriggerOptions.From(Config(("Triggers:PollInterval", "2s"), ("Triggers:ReconcileInterval", "01:00:00"), ("Triggers:MaxObjectsPerRun", "50")));
        Assert.Equal(TimeSpan.FromSeconds(2), o.PollInterval);
        Assert.Equal("0 */1 * * *", o.ReconcileCron());
        Assert.Equal(50, o.MaxObjectsPerRun);
    }

    [Fact]
    public void A_value_that_cannot_be_read_names_its_key()
    {
        var e = Assert.Throws<PipelinesException>(() => TriggerOptions.From(Config(("Triggers:PollInterval", "often"))));
        Assert.Equal("Triggers:PollInterval: 'often' is not a duration (e.g. 5s, 2m, 1h30m)", e.Message);
        Assert.Throws<PipelinesException>(() => TriggerOptions.From(Config(("Triggers:MaxObjectsPerRun", "0"))));
    }
}
