using System.Security.Cryptography;
using System.Text;
using Pipelines.Planning;
using Pipelines.RunStore;
using Pipelines.Storage;
using Pipelines.Tests.Model;
using Pipelines.Tests.Support;
using Pipelines.Worker;

namespace Pipelines.Tests.Storage;

/// <summary>
/// An S3 ETag is the MD5 of an object's bytes only for objects stored unencrypted or with
/// SSE-S3; under SSE-KMS and SSE-C it is not, and S3 says so in the response's headers. Swift has
/// no server-side encryption, so a listener on loopback answers as S3 does for such objects, and
/// the real stage-in path (list, plan's content tag, download, check) runs against it.
/// </summary>
[Unit]
public sealed class EncryptedObjectTagTests : IDisposable
{
    private static readonly byte[] Bytes = Encoding.UTF8.GetBytes("@r1\nACGT\n+\nIIII\n");

    // An ETag of 32 hex digits that is not the MD5 of the bytes, as SSE-KMS gives.
    private static readonly string KmsTag = Convert.ToHexStringLower(SHA256.HashData(Bytes))[..32];

    private readonly TempFolder _temp = new();

    // SSE-C too, as the client meets its answer: reading such an object from S3 needs its key in
    // the request, which the engine has no setting for (S3 refuses the read before any ETag is
    // seen), but a store that answers with the SSE-C headers must not be taken for an MD5 either
    // by the rule or by the SDK's own check.
    public static TheoryData<string> Encryptions => ["SSE-KMS", "DSSE-KMS", "SSE-C"];

    [Theory]
    [MemberData(nameof(Encryptions))]
    public async Task An_encrypted_object_whose_ETag_is_not_its_MD5_is_staged_by_its_version_and_hashed_as_it_streams(string encryption)
    {
        await using var s3 = new S3Recorder(r => Answer(r, servedTag: KmsTag, HeadersOf(encryption)));

        var staged = await StageAsync(s3);

        var file = Assert.Single(staged);
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(Bytes)), file.Sha256);
        Assert.Equal(Bytes, await File.ReadAllBytesAsync(_temp.Combine("in", "a.fastq")));
    }

    [Theory]
    [MemberData(nameof(Encryptions))]
    public async Task An_encrypted_object_replaced_after_planning_fails_the_task_as_changed(string encryption)
    {
        // Planned with KmsTag; by the time it is staged the key holds another version.
        var other = new string(KmsTag.Reverse().ToArray());
        await using var s3 = new S3Recorder(r => Answer(r, servedTag: r.Method == "GET" && !r.RawUrl.Contains("list-type", StringComparison.Ordinal) ? other : KmsTag, HeadersOf(encryption)));

        var e = await Assert.ThrowsAsync<PipelinesException>(() => StageAsync(s3));

        Assert.Equal($"input 'a.fastq' changed after the run was planned (stored content no longer matches its tag {KmsTag}); submit the run again", e.Message);
        Assert.False(e.RetryHelps);
    }

    [Fact]
    public async Task An_unencrypted_object_is_still_checked_against_the_MD5_its_ETag_is()
    {
        // No encryption header: the 32-hex ETag is an MD5, and these bytes do not have it.
        await using var s3 = new S3Recorder(r => Answer(r, servedTag: KmsTag, []));

        var e = await Assert.ThrowsAsync<PipelinesException>(() => StageAsync(s3));

        Assert.StartsWith("s3://enc/reads/a.fastq: the bytes received do not match the object's ETag (the MD5 of its content)", e.Message, StringComparison.Ordinal);
        Assert.True(e.RetryHelps);
    }

    [Theory]
    [InlineData("9b2cf535f27731c974343645a3985328", null, null, true)]
    [InlineData("9B2CF535F27731C974343645A3985328", "AES256", null, true)]
    [InlineData("9b2cf535f27731c974343645a3985328", "aws:kms", null, false)]
    [InlineData("9b2cf535f27731c974343645a3985328", "aws:kms:dsse", null, false)]
    [InlineData("9b2cf535f27731c974343645a3985328", null, "AES256", false)]
    [InlineData("9b2cf535f27731c974343645a3985328-12", null, null, false)]
    [InlineData("not-hex-but-thirty-two-chars-ok!", null, null, false)]
    [InlineData(null, null, null, false)]
    public void An_ETag_is_an_MD5_only_unencrypted_or_under_SSE_S3_and_never_with_a_part_count(string? etag, string? sse, string? customerAlgorithm, bool isMd5) =>
        Assert.Equal(isMd5, ContentTags.IsMd5ETag(etag, sse, customerAlgorithm));

    public void Dispose() => _temp.Dispose();

    /// <summary>Lists s3://enc/reads/ as the submitter does (its content tags), then stages the one task in as a worker does.</summary>
    private async Task<List<FileRef>> StageAsync(S3Recorder s3)
    {
        using var stores = new ObjectStoreFactory(new S3Settings(s3.Endpoint, "AKIAPIPELINESTEST002", "test-secret", "us-east-1"));
        var input = stores.Open("s3://enc/reads/");
        var inputs = new List<InputFile>();
        await foreach (var o in input.Store.ListAsync(input.Prefix, CancellationToken.None))
        {
            inputs.Add(new InputFile(o.Key[input.Prefix.Length..], o.Size, await input.Store.ContentTagAsync(o, CancellationToken.None)));
        }

        var workflow = WorkflowText.Parse(WorkflowText.Minimal.Replace("s3://in-bucket/data/", "s3://enc/reads/", StringComparison.Ordinal));
        var task = new TaskRecord("run-1", 0, "task-1", TaskState.Queued, inputs, new Dictionary<string, string>(), 0, null, null, null, null, null);
        var staging = new Staging(stores, new WorkerOptions());
        return await staging.StageInAsync(workflow, task, _temp.Combine("in"), CancellationToken.None);
    }

    /// <summary>The headers S3 sends with an object stored under SSE-KMS, DSSE-KMS or SSE-C, whose ETag is no MD5.</summary>
    private static (string Name, string Value)[] HeadersOf(string encryption) => encryption switch
    {
        "SSE-KMS" => [("x-amz-server-side-encryption", "aws:kms"), ("x-amz-server-side-encryption-aws-kms-key-id", "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab")],
        "DSSE-KMS" => [("x-amz-server-side-encryption", "aws:kms:dsse"), ("x-amz-server-side-encryption-aws-kms-key-id", "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab")],
        "SSE-C" => [("x-amz-server-side-encryption-customer-algorithm", "AES256"), ("x-amz-server-side-encryption-customer-key-MD5", "ZjQ2NjRkYjg1YzNkMjM4ZjY4ZjNlZTQ3YjQ4MzVkOGI=")],
        _ => throw new ArgumentOutOfRangeException(nameof(encryption), encryption, null),
    };

    /// <summary>S3's answers for the bucket "enc": a listing of reads/a.fastq, and the object with its ETag and encryption header.</summary>
    private static S3Recorder.Reply Answer(S3Recorder.RecordedRequest r, string servedTag, IEnumerable<(string Name, string Value)> encryption)
    {
        if (r.RawUrl.Contains("list-type=2", StringComparison.Ordinal))
        {
            return S3Recorder.Reply.Xml($"""
                <ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>enc</Name><Prefix>reads/</Prefix><KeyCount>1</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated>
                <Contents><Key>reads/a.fastq</Key><LastModified>2026-12-01T00:00:00.000Z</LastModified><ETag>&quot;{KmsTag}&quot;</ETag><Size>{Bytes.Length}</Size><StorageClass>STANDARD</StorageClass></Contents></ListBucketResult>
                """);
        }

        if (r.Method == "GET" && r.RawUrl.StartsWith("/enc/reads/a.fastq", StringComparison.Ordinal))
        {
            return new S3Recorder.Reply(200, [("ETag", $"\"{servedTag}\""), ("Content-Type", "application/octet-stream"), ("Last-Modified", "Tue, 01 Dec 2026 00:00:00 GMT"), .. encryption], Bytes);
        }

        return S3Recorder.Reply.Error(404, "NoSuchKey", "The specified key does not exist.");
    }
}
