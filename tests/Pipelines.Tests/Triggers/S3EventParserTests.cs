using Pipelines.Triggers;

namespace Pipelines.Tests.Triggers;

[Unit]
public sealed class S3EventParserTests
{
    /// <summary>An event as AWS S3 sends it (trimmed to the fields that matter, plus a few that do not).</summary>
    public static string AwsEvent(string bucket, string encodedKey, string etag, long size, string eventName = "ObjectCreated:Put") => $$$$"""
        {"Records":[{"eventVersion":"2.1","eventSource":"aws:s3","awsRegion":"us-east-1","eventTime":"2026-11-26T12:00:00.000Z",
          "eventName":"{{{{eventName}}}}","s3":{"s3SchemaVersion":"1.0","configurationId":"pipelines",
          "bucket":{"name":"{{{{bucket}}}}","arn":"arn:aws:s3:::{{{{bucket}}}}"},
          "object":{"key":"{{{{encodedKey}}}}","size":{{{{size}}}},"eTag":"{{{{etag}}}}","sequencer":"0055AED6DCD90281E5"}}}]}
        """;

    [Fact]
    public void An_AWS_record_gives_bucket_decoded_key_etag_size_and_event_time()
    {
        var body = S3EventParser.Parse(AwsEvent("raw", "in/run+42/S%2B1_R1.fastq", "9b2cf535f27731c974343645a3985328", 3291));

        var r = Assert.Single(body.Records);
        Assert.Equal(S3EventKind.Created, r.Kind);
        Assert.Equal("raw", r.Bucket);
        Assert.Equal("in/run 42/S+1_R1.fastq", r.Key);
        Assert.Equal("9b2cf535f27731c974343645a3985328", r.ETag);
        Assert.Equal(3291, r.Size);
        Assert.Equal(new DateTimeOffset(2026, 11, 26, 12, 0, 0, TimeSpan.Zero), r.EventTime);
    }

    [Fact]
    public void MinIO_event_names_and_removals_are_understood()
    {
        var body = S3EventParser.Parse("""
            {"EventName":"s3:ObjectRemoved:Delete","Key":"raw/in/a.fastq","Records":[
              {"eventName":"s3:ObjectCreated:CompleteMultipartUpload","s3":{"bucket":{"name":"raw"},"object":{"key":"in/a.fastq","size":5,"eTag":"\"abc-2\""}}},
              {"eventName":"s3:ObjectRemoved:Delete","s3":{"bucket":{"name":"raw"},"object":{"key":"in/a.fastq"}}},
              {"eventName":"s3:ObjectAccessed:Get","s3":{"bucket":{"name":"raw"},"object":{"key":"in/a.fastq"}}}]}
            """);

        Assert.Equal([S3EventKind.Created, S3EventKind.Removed, S3EventKind.Other], body.Records.Select(r => r.Kind));
        Assert.Equal("abc-2", body.Records[0].ETag);
        Assert.Null(body.Records[1].ETag);
    }

    [Fact]
    public void An_SNS_notification_is_unwrapped()
    {
        var inner = AwsEvent("raw", "in/a.fastq", "e1", 10);
        var sns = System.Text.Json.JsonSerializer.Serialize(new { Type = "Notification", MessageId = "m1", Message = inner });

        var r = Assert.Single(S3EventParser.Parse(sns).Records);

        Assert.Equal("in/a.fastq", r.Key);
    }

    [Fact]
    public void Test_events_and_subscription_confirmations_carry_no_records_and_say_why()
    {
        var test = S3EventParser.Parse("""{"Service":"Amazon S3","Event":"s3:TestEvent","Bucket":"raw"}""");
        var confirm = S3EventParser.Parse("""{"Type":"SubscriptionConfirmation","SubscribeURL":"https://example.invalid/"}""");

        Assert.Empty(test.Records);
        Assert.Contains("TestEvent", test.Note, StringComparison.Ordinal);
        Assert.Empty(confirm.Records);
        Assert.Contains("SubscribeURL", confirm.Note, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("not json", "the body is not JSON")]
    [InlineData("[1,2]", "not a JSON object")]
    [InlineData("""{"records":[]}""", "no Records array")]
    [InlineData("""{"Records":{}}""", "no Records array")]
    public void A_body_that_is_not_an_event_is_malformed(string body, string reason)
    {
        var e = Assert.Throws<MalformedEventException>(() => S3EventParser.Parse(body));
        Assert.Contains(reason, e.Message, StringComparison.Ordinal);
        Assert.StartsWith("malformed event body: ", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Records_with_missing_or_odd_fields_are_kept_with_nulls_for_the_ingest_to_answer()
    {
        var body = S3EventParser.Parse("""{"Records":[{"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"raw"},"object":{"key":"a","size":-1}}}, 7, {}]}""");

        Assert.Equal(3, body.Records.Count);
        Assert.Null(body.Records[0].Size);
        Assert.Null(body.Records[0].ETag);
        Assert.Null(body.Records[0].EventTime);
        Assert.Equal(S3EventKind.Other, body.Records[1].Kind);
        Assert.Equal("", body.Records[2].EventName);
    }

    [Theory]
    [InlineData("2026-12-06T20:50:00.123Z", "2026-12-06T20:50:00.1230000+00:00")]
    [InlineData("2026-12-06T22:50:00+02:00", "2026-12-06T20:50:00.0000000+00:00")] // an offset is converted: the store takes UTC only
    [InlineData("2026-12-06T20:50:00", "2026-12-06T20:50:00.0000000+00:00")] // no zone: UTC, as S3 means it
    [InlineData("1970-01-01T00:00:00.000Z", null)] // a placeholder, not a landing
    [InlineData("0001-01-01T00:00:00Z", null)]
    [InlineData("20:50", null)] // not a date and time
    [InlineData("Sun, 06 Dec 2026 20:50:00 GMT", null)]
    [InlineData("", null)]
    public void An_event_time_is_read_in_UTC_or_not_at_all(string text, string? expected)
    {
        var body = S3EventParser.Parse($$$$"""{"Records":[{"eventName":"ObjectCreated:Put","eventTime":"{{{{text}}}}","s3":{"bucket":{"name":"raw"},"object":{"key":"a","size":1,"eTag":"e"}}}]}""");

        var at = Assert.Single(body.Records).EventTime;
        Assert.Equal(expected, at?.ToString("O", System.Globalization.CultureInfo.InvariantCulture));
        Assert.True(at is null || at.Value.Offset == TimeSpan.Zero);
    }
}
