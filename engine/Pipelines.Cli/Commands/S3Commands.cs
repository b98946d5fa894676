using System.ComponentModel;
using Amazon.S3;
using Amazon.S3.Model;
using Pipelines.Hosting;
using Pipelines.Storage;
using Spectre.Console.Cli;

namespace Pipelines.Cli.Commands;

/// <summary>
/// `pipelines s3 mb|ls|cp`: enough of a bucket client to make a bucket and put a dataset in it
/// with the same settings the engine uses (S3:*, AWS_*), so no other tool is needed.
/// </summary>
public static class S3Commands
{
    public sealed class BucketSettings : CommonSettings
    {
        [CommandArgument(0, "<URI>")]
        [Description("s3://bucket")]
        public string Uri { get; init; } = "";
    }

    public sealed class CopySettings : CommonSettings
    {
        [CommandArgument(0, "<FROM>")]
        [Description("A local file or folder, or s3://bucket/key (or s3://bucket/prefix/ for everything under it).")]
        public string From { get; init; } = "";

        [CommandArgument(1, "<TO>")]
        [Description("s3://bucket/prefix/ (a folder is copied under it, keys relative to the folder), or a local folder.")]
        public string To { get; init; } = "";
    }

    /// <summary>`pipelines s3 mb s3://bucket`: make a bucket (an existing one of yours is fine).</summary>
    public sealed class MakeBucketCommand : AsyncCommand<BucketSettings>
    {
        public override async Task<int> ExecuteAsync(CommandContext context, BucketSettings settings, CancellationToken cancellationToken)
        {
            using var stores = Stores(settings);
            var bucket = BucketOf(settings.Uri);
            try
            {
                await stores.S3Client.PutBucketAsync(new PutBucketRequest { BucketName = bucket }, cancellationToken).ConfigureAwait(false);
            }
            catch (AmazonS3Exception e) when (e.ErrorCode == "BucketAlreadyOwnedByYou")
            {
                // Already there and ours: nothing to do.
            }
            catch (Exception e) when (S3Settings.IsMissingCredentials(e))
            {
                throw S3Settings.MissingCredentials($"s3://{bucket}", e);
            }
            catch (Exception e) when (e is Amazon.Runtime.AmazonServiceException or Amazon.Runtime.AmazonClientException or HttpRequestException)
            {
                throw new PipelinesException($"s3://{bucket}: cannot make the bucket: {e.GetBaseException().Message}", retryHelps: false, e);
            }

            Console.WriteLine($"made s3://{bucket}");
            return Cli.Ok;
        }
    }

    /// <summary>`pipelines s3 ls s3://bucket/prefix/`: every object under a prefix with its size.</summary>
    public sealed class ListCommand : AsyncCommand<BucketSettings>
    {
        public override async Task<int> ExecuteAsync(CommandContext context, BucketSettings settings, CancellationToken cancellationToken)
        {
            using var stores = Stores(settings);
            var location = Open(stores, settings.Uri);
            long count = 0, bytes = 0;
            await foreach (var o in location.Store.ListAsync(location.Key(""), cancellationToken).ConfigureAwait(false))
            {
                Console.WriteLine($"{o.Size,12}  {location.Uri}{o.Key[location.Key("").Length..]}");
                count++;
                bytes += o.Size;
            }

            Console.WriteLine($"{count} object(s), {Model.Quantities.FormatSize(bytes)}");
            return Cli.Ok;
        }
    }

    /// <summary>`pipelines s3 cp FROM TO`: a file or a folder to a bucket, or a bucket's objects to a folder.</summary>
    public sealed class CopyCommand : AsyncCommand<CopySettings>
    {
        public override async Task<int> ExecuteAsync(CommandContext context, CopySettings settings, CancellationToken cancellationToken)
        {
            using var stores = Stores(settings);
            var toS3 = settings.To.StartsWith("s3://", StringComparison.Ordinal);
            var fromS3 = settings.From.StartsWith("s3://", StringComparison.Ordinal);
            if (toS3 == fromS3)
            {
                throw new PipelinesException("copy from a local file or folder to s3://..., or from s3://... to a local folder", retryHelps: false);
            }

            long count = 0, bytes = 0;
            if (toS3)
            {
                var target = Open(stores, settings.To.EndsWith('/') || Directory.Exists(settings.From) ? settings.To : ParentOf(settings.To));
                var files = Directory.Exists(settings.From)
                    ? Directory.EnumerateFiles(settings.From, "*", new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = 0 })
                        .Select(f => (Path: f, Key: Path.GetRelativePath(settings.From, f).Replace(Path.DirectorySeparatorChar, '/')))
                    : File.Exists(settings.From)
                        ? [(settings.From, settings.To.EndsWith('/') ? Path.GetFileName(settings.From) : settings.To[(settings.To.LastIndexOf('/') + 1)..])]
                        : throw new PipelinesException($"{settings.From} is neither a file nor a folder", retryHelps: false);
                await Parallel.ForEachAsync(files, new ParallelOptions { MaxDegreeOfParallelism = 8, CancellationToken = cancellationToken }, async (f, token) =>
                {
                    var digest = await target.Store.UploadAsync(target.Key(f.Key), f.Path, token).ConfigureAwait(false);
                    Interlocked.Increment(ref count);
                    Interlocked.Add(ref bytes, digest.Size);
                }).ConfigureAwait(false);

                Console.WriteLine($"copied {count} file(s), {Model.Quantities.FormatSize(bytes)}, to {target.Uri}");
            }
            else
            {
                var source = Open(stores, settings.From.EndsWith('/') ? settings.From : ParentOf(settings.From));
                var single = settings.From.EndsWith('/') ? null : settings.From[(settings.From.LastIndexOf('/') + 1)..];
                var objects = source.Store.ListAsync(source.Key(single ?? ""), cancellationToken)
                    .Where(o => single is null || o.Key[source.Key("").Length..] == single);
                await Parallel.ForEachAsync(objects, new ParallelOptions { MaxDegreeOfParallelism = 8, CancellationToken = cancellationToken }, async (o, token) =>
                {
                    var digest = await source.Store.DownloadAsync(o.Key, Path.Combine(settings.To, o.Key[source.Key("").Length..]), token).ConfigureAwait(false);
                    Interlocked.Increment(ref count);
                    Interlocked.Add(ref bytes, digest.Size);
                }).ConfigureAwait(false);

                Console.WriteLine($"copied {count} object(s), {Model.Quantities.FormatSize(bytes)}, to {Path.GetFullPath(settings.To)}");
            }

            return Cli.Ok;
        }
    }

    private static ObjectStoreFactory Stores(CommonSettings settings) =>
        new(S3Settings.From(EngineHost.Configuration(settings.Config)));

    private static StorageLocation Open(ObjectStoreFactory stores, string uri)
    {
        if (!uri.StartsWith("s3://", StringComparison.Ordinal) || BucketOf(uri).Length == 0)
        {
            throw new PipelinesException($"'{uri}' is not s3://bucket/prefix/", retryHelps: false);
        }

        return stores.Open(uri);
    }

    private static string BucketOf(string uri)
    {
        if (!uri.StartsWith("s3://", StringComparison.Ordinal))
        {
            throw new PipelinesException($"'{uri}' is not s3://bucket", retryHelps: false);
        }

        var rest = uri["s3://".Length..];
        return rest.Split('/')[0];
    }

    private static string ParentOf(string uri) => uri[..(uri.LastIndexOf('/') + 1)];
}
