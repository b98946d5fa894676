using System.Diagnostics.Metrics;
using Npgsql;
using Pipelines.Telemetry;
using Pipelines.Tests.Support;

namespace Pipelines.Tests.Telemetry;

/// <summary>What the exported metrics' labels carry: never a secret.</summary>
[Integration]
public sealed class MetricLabelsTests
{
    [Fact]
    public async Task A_PostgreSQL_pool_not_named_by_the_engine_is_labelled_without_its_password()
    {
        // Hangfire.PostgreSql opens connections from the connection string, so Npgsql's metrics
        // label that pool with its default name: it must not carry the password.
        var connection = new NpgsqlConnectionStringBuilder(TestEnvironment.Postgres) { Password = "s3cret-pw-" + Guid.NewGuid().ToString("N")[..6], ApplicationName = "labels-test" }.ConnectionString;
        var pools = new List<string>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == TelemetryHosting.NpgsqlMeter)
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<int>((_, _, tags, _) => Collect(tags));
        listener.SetMeasurementEventCallback<long>((_, _, tags, _) => Collect(tags));
        listener.SetMeasurementEventCallback<double>((_, _, tags, _) => Collect(tags));
        listener.Start();

        await using (var pool = NpgsqlDataSource.Create(connection))
        await using (var cmd = pool.CreateCommand("SELECT 1"))
        {
            await cmd.ExecuteScalarAsync();
            listener.RecordObservableInstruments();
        }

        lock (pools)
        {
            Assert.Contains(pools, p => p.Contains("labels-test", StringComparison.Ordinal));
            Assert.DoesNotContain(pools, p => p.Contains("s3cret-pw", StringComparison.Ordinal));
        }

        void Collect(ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            foreach (var tag in tags)
            {
                if (tag.Key == "db.client.connection.pool.name" && tag.Value is string name)
                {
                    lock (pools)
                    {
                        pools.Add(name);
                    }
                }
            }
        }
    }
}
