using System.Diagnostics;
using Amazon.S3.Model;
using Pipelines.Storage;

// Tools for bench/run:
//   upload DIR s3://bucket/prefix/          put every file of DIR (bucket created if missing)
//   direct s3://bucket/in/ s3://bucket/out/ BATCH
//        the tuned direct transfer the engine is compared with: list the input, get every
//        object (32 at once), and put one result object per BATCH inputs; prints seconds.
//   get s3://bucket/key FILE                  download one object
//   warm fork|http|oneshot|fork-fastq|oneshot-fastq|cold CONCURRENCY REQUESTS [FASTQ]
//        invoke latency of warm containers against a container per request (bench/warm)
//   harvest BUSY_S IDLE_S CYCLES PNG WORK_DIR PIPELINES_CLI DATA_DIR [WORKERS] [TASK_LOOPS]
//        an owner busy in bursts beside a pipeline run: alone, harvesting off, on (bench/harvest)
//   harvest-owner BUSY_S IDLE_S TOTAL_S      the owner itself (started by harvest)
//   freeze [ROUNDS] [CONTAINERS]             what suspending idle-class containers costs a busy
//        owner: docker pause against the freezer files (bench/freeze)
if (args.Length > 0 && args[0] == "freeze")
{
    return await Pipelines.Bench.FreezeBench.RunAsync(args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 10, args.Length > 2 ? int.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture) : 4);
}

if (args.Length > 0 && args[0] == "harvest")
{
    return await Pipelines.Bench.HarvestBench.RunAsync(args[1..]);
}

if (args.Length == 4 && args[0] == "harvest-owner")
{
    return Pipelines.Bench.HarvestBench.Owner(int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture), int.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture), int.Parse(args[3], System.Globalization.CultureInfo.InvariantCulture));
}

if (args.Length < 3)
{
    Console.Error.WriteLine("usage: upload DIR s3://bucket/prefix/ | direct s3://in/ s3://out/ BATCH");
    return 2;
}

if (args[0] == "warm")
{
    return await Pipelines.Bench.WarmBench.RunAsync(args[1], int.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture), int.Parse(args[3], System.Globalization.CultureInfo.InvariantCulture), args.Length > 4 ? args[4] : null);
}

using var stores = new ObjectStoreFactory(S3Settings.From(new Microsoft.Extensions.Configuration.ConfigurationBuilder().Build()));
var parallel = new ParallelOptions { MaxDegreeOfParallelism = 32 };
switch (args[0])
{
    case "upload":
        {
            var dir = Path.GetFullPath(args[1]);
            var target = stores.Open(args[2]);
            var bucket = args[2]["s3://".Length..].Split('/')[0];
            try
            {
                await stores.S3Client.PutBucketAsync(new PutBucketRequest { BucketName = bucket });
            }
            catch (Amazon.S3.AmazonS3Exception e) when (e.ErrorCode is "BucketAlreadyOwnedByYou" or "BucketAlreadyExists")
            {
                // Uploading into an existing bucket is fine.
            }

            var files = Directory.EnumerateFiles(dir, "*", SearchOption.AllDirectories).ToList();
            await Parallel.ForEachAsync(files, parallel, async (f, ct) =>
                await target.Store.UploadAsync(target.Key(Path.GetRelativePath(dir, f)), f, ct));
            Console.WriteLine($"uploaded {files.Count} files");
            return 0;
        }

    case "direct":
        {
            var input = stores.Open(args[1]);
            var output = stores.Open(args[2]);
            var batch = int.Parse(args[3], System.Globalization.CultureInfo.InvariantCulture);
            var clock = Stopwatch.StartNew();
            var keys = new List<string>();
            await foreach (var o in input.Store.ListAsync(input.Prefix, CancellationToken.None))
            {
                keys.Add(o.Key);
            }

            var scratch = Directory.CreateTempSubdirectory("bench-direct-");
            long bytes = 0;
            await Parallel.ForEachAsync(keys.Select((k, i) => (k, i)), parallel, async (x, ct) =>
            {
                var d = await input.Store.DownloadAsync(x.k, Path.Combine(scratch.FullName, x.i.ToString(System.Globalization.CultureInfo.InvariantCulture)), ct);
                Interlocked.Add(ref bytes, d.Size);
            });
            var results = (keys.Count + batch - 1) / batch;
            await Parallel.ForEachAsync(Enumerable.Range(0, results), parallel, async (i, ct) =>
                await output.Store.PutAsync(output.Key($"part-{i:D6}.tsv"), new byte[60 * batch], "text/tab-separated-values", ct));
            clock.Stop();
            scratch.Delete(recursive: true);
            Console.WriteLine($"{clock.Elapsed.TotalSeconds:0.000} {keys.Count} {bytes}");
            return 0;
        }

    case "get":
        {
            var slash = args[1].LastIndexOf('/');
            var folder = stores.Open(args[1][..(slash + 1)]);
            await folder.Store.DownloadAsync(folder.Key(args[1][(slash + 1)..]), Path.GetFullPath(args[2]), CancellationToken.None);
            return 0;
        }

    default:
        Console.Error.WriteLine("unknown tool " + args[0]);
        return 2;
}
