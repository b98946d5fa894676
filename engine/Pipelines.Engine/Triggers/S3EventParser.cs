using System.Globalization;
using System.Net;
using System.Text.Json;

namespace Pipelines.Triggers;

/// <summary>What kind of change a record reports.</summary>
internal enum S3EventKind { Created, Removed, Other }

/// <summary>One record of an S3 event notification, with the key URL-decoded. Missing fields are null.</summary>
internal sealed record S3EventRecord(int Index, string EventName, S3EventKind Kind, string? Bucket, string? Key, string? ETag, long? Size)
{
    /// <summary>The record's <c>eventTime</c> (when the change happened in the bucket), in UTC; null when missing or odd (<see cref="S3EventParser.EventTimeOf"/>).</summary>
    public DateTimeOffset? EventTime { get; init; }
}

/// <summary>A parsed body: the records, or why there are none (a test event, a subscription confirmation).</summary>
internal sealed record S3EventBody(IReadOnlyList<S3EventRecord> Records, string? Note);

/// <summary>
/// Reads S3 event notifications in the standard shape that AWS S3, MinIO and Ceph send
/// (<c>Records[].eventName</c>, <c>Records[].eventTime</c>, <c>Records[].s3.bucket.name</c>, <c>s3.object.key</c> URL-encoded,
/// <c>eTag</c>, <c>size</c>), bare or inside an SNS envelope (<c>{"Type":"Notification","Message":"..."}</c>).
/// </summary>
internal static class S3EventParser
{
    /// <summary>The records of a body; throws <see cref="MalformedEventException"/> when the body is not such an event.</summary>
    public static S3EventBody Parse(string body)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(body);
        }
        catch (JsonException e)
        {
            throw new MalformedEventException($"the body is not JSON: {e.Message}");
        }

        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw new MalformedEventException("the body is not a JSON object with Records");
            }

            // SNS wraps the S3 event as a string in Message.
            if (Text(root, "Type") is { } snsType)
            {
                if (snsType == "Notification" && Text(root, "Message") is { } message)
                {
                    return Parse(message);
                }

                return new S3EventBody([], $"SNS message of type '{snsType}' carries no S3 event" + (snsType == "SubscriptionConfirmation" ? " (confirm the subscription by opening its SubscribeURL)" : ""));
            }

            if (Text(root, "Event") == "s3:TestEvent")
            {
                return new S3EventBody([], "s3:TestEvent (sent when notifications are configured)");
            }

            if (!root.TryGetProperty("Records", out var records) || records.ValueKind != JsonValueKind.Array)
            {
                throw new MalformedEventException("the body has no Records array (expected an S3 event notification)");
            }

            var list = new List<S3EventRecord>();
            var i = 0;
            foreach (var r in records.EnumerateArray())
            {
                list.Add(Record(i++, r));
            }

            return new S3EventBody(list, null);
        }
    }

    private static S3EventRecord Record(int index, JsonElement r)
    {
        if (r.ValueKind != JsonValueKind.Object)
        {
            return new S3EventRecord(index, "", S3EventKind.Other, null, null, null, null);
        }

        // MinIO writes "s3:ObjectCreated:Put", AWS and Ceph "ObjectCreated:Put".
        var name = Text(r, "eventName") ?? "";
        var bare = name.StartsWith("s3:", StringComparison.Ordinal) ? name[3..] : name;
        var kind = bare.StartsWith("ObjectCreated:", StringComparison.Ordinal) ? S3EventKind.Created
            : bare.StartsWith("ObjectRemoved:", StringComparison.Ordinal) ? S3EventKind.Removed
            : S3EventKind.Other;
        string? bucket = null, key = null, etag = null;
        long? size = null;
        if (r.TryGetProperty("s3", out var s3) && s3.ValueKind == JsonValueKind.Object)
        {
            if (s3.TryGetProperty("bucket", out var b) && b.ValueKind == JsonValueKind.Object)
            {
                bucket = Text(b, "name");
            }

            if (s3.TryGetProperty("object", out var o) && o.ValueKind == JsonValueKind.Object)
            {
                // Keys are URL-encoded as in a form: '+' is a space, '%2B' a plus.
                key = Text(o, "key") is { } k ? WebUtility.UrlDecode(k) : null;
                etag = (Text(o, "eTag") ?? Text(o, "etag"))?.Trim('"');
                if (o.TryGetProperty("size", out var sz) && sz.ValueKind == JsonValueKind.Number && sz.TryGetInt64(out var n) && n >= 0)
                {
                    size = n;
                }
            }
        }

        return new S3EventRecord(index, name, kind, bucket, key, string.IsNullOrEmpty(etag) ? null : etag, size) { EventTime = EventTimeOf(Text(r, "eventTime")) };
    }

    /// <summary>The earliest event time taken as said: before it, a sender's clock is wrong (or the field a placeholder).</summary>
    internal static readonly DateTimeOffset EarliestEventTime = new(2000, 1, 1, 0, 0, 0, TimeSpan.Zero);

    /// <summary>
    /// An ISO 8601 date and time as AWS writes it ("2026-12-06T20:50:00.123Z"; an offset is
    /// converted, no zone is taken as UTC, as S3 means it), in UTC; null when missing, not in that
    /// form, or before <see cref="EarliestEventTime"/>. It only dates the trigger's lag: an odd one
    /// falls back to when the trigger saw the object, and never refuses or loses the record.
    /// </summary>
    internal static DateTimeOffset? EventTimeOf(string? text) =>
        DateTimeOffset.TryParseExact(text, "yyyy-MM-dd'T'HH:mm:ss.FFFFFFFK", CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var t)
            && t >= EarliestEventTime
            ? t.ToUniversalTime()
            : null;

    private static string? Text(JsonElement e, string property) =>
        e.TryGetProperty(property, out var p) && p.ValueKind == JsonValueKind.String ? p.GetString() : null;
}

/// <summary>The body is not an S3 event notification at all (an HTTP endpoint answers 400).</summary>
internal sealed class MalformedEventException(string message) : PipelinesException("malformed event body: " + message, retryHelps: false);
