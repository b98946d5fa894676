using System.Net.Sockets;
using System.Transactions;
using Npgsql;

namespace Pipelines.Tests.Faults;

/// <summary>The one rule of what an outage is (Outage.Is), through the wrappers libraries put around it.</summary>
[Unit]
public sealed class OutageRuleTests
{
    private static readonly NpgsqlException Refused = new("Failed to connect to 127.0.0.1:5432", new SocketException((int)SocketError.ConnectionRefused));

    [Fact]
    public void A_PostgreSQL_outage_wrapped_by_Hangfires_client_and_a_transaction_is_an_outage()
    {
        Assert.True(Refused.IsTransient);
        var wrapped = new InvalidOperationException("Background job creation failed. See inner exception for details.", new TransactionAbortedException("The transaction has aborted.", Refused));

        Assert.True(Outage.Is(Refused));
        Assert.True(Outage.Is(wrapped));
    }

    [Fact]
    public void The_engines_own_word_wins_over_its_cause_and_a_failure_is_not_an_outage()
    {
        Assert.False(Outage.Is(new PipelinesException("image gone", retryHelps: false, Refused)));
        Assert.True(Outage.Is(new PipelinesException("S3 out of reach", retryHelps: true)));
        Assert.False(Outage.Is(new InvalidOperationException("a bug", new ArgumentException("bad"))));
        Assert.False(Outage.Is(new NpgsqlException("syntax error")));
        Assert.True(Outage.Is(new AggregateException(new TimeoutException())));
    }
}
