using System.ComponentModel;
using System.Globalization;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Pipelines.Algorithms;
using Pipelines.Hosting;
using Spectre.Console.Cli;

namespace Pipelines.Cli.Commands;

/// <summary>`pipelines algorithm ...`: versioned images in the algorithm store (docs/algorithms.md).</summary>
public static class AlgorithmCommands
{
    private static async Task<IHost> StartAsync(CommonSettings settings, CancellationToken ct)
    {
        var config = EngineHost.Configuration(settings.Config);
        if (!EngineHost.UsesPostgres(config))
        {
            throw new PipelinesException(
                "`pipelines algorithm` works on the catalog of versions in PostgreSQL: set PIPELINES_POSTGRES (or Postgres in pipelines.json) to the connection string; "
                + "without PostgreSQL the catalog lives in the memory of one `pipelines server`: push through it with --server URL (or PIPELINES_SERVER) and use its /api/algorithms and dashboard",
                retryHelps: false);
        }

        var host = EngineHost.Build(config, worker: false);
        try
        {
            await host.StartAsync(ct).ConfigureAwait(false);
            return host;
        }
        catch
        {
            host.Dispose();
            throw;
        }
    }

    private static string Who() => $"{Environment.UserName}@{Environment.MachineName}";

    private static string Size(long bytes) => AlgorithmVersion.SizeText(bytes);

    public class VersionSettings : CommonSettings
    {
        [CommandArgument(0, "<NAME>")]
        [Description("The algorithm's name.")]
        public string Name { get; init; } = "";

        [CommandArgument(1, "<VERSION>")]
        [Description("The version.")]
        public string Version { get; init; } = "";
    }

    /// <summary>`pipelines algorithm push NAME VERSION IMAGE`: a local image or a `docker save` tarball into the algorithm store.</summary>
    public sealed class PushCommand : AsyncCommand<PushCommand.Settings>
    {
        public sealed class Settings : VersionSettings, IRemoteSettings
        {
            [CommandOption("--server <URL>")]
            [Description("Push through a `pipelines server` (POST /api/algorithms/...) instead of in-process (default PIPELINES_SERVER).")]
            public string? Server { get; init; }

            [CommandOption("--key <KEY>")]
            [Description("The server's access key (default PIPELINES_SERVER_KEY).")]
            public string? Key { get; init; }
            [CommandOption("--tenant <ID>")]
            [Description(Remote.TenantHelp)]
            public string? Tenant { get; init; }

            [CommandArgument(2, "<IMAGE>")]
            [Description("An image on this machine's Docker engine (name or id), or the path of a `docker save` tarball.")]
            public string Image { get; init; } = "";

            [CommandOption("--notes <TEXT>")]
            [Description("What changed in this version; kept with it.")]
            public string? Notes { get; init; }

            [CommandOption("--digest <DIGEST>")]
            [Description("The image id the tarball must have (sha256:...); a tarball with another is refused.")]
            public string? Digest { get; init; }
        }

        public override async Task<int> ExecuteAsync(CommandContext context, Settings settings, CancellationToken cancellationToken)
        {
            var r = Remote.ServerOf(settings) is null
                ? await PushHereAsync(settings, cancellationToken).ConfigureAwait(false)
                : await PushToServerAsync(settings, cancellationToken).ConfigureAwait(false);
            var v = r.Version;
            Console.WriteLine($"pushed {v.Name}@{v.Version}: {v.Digest}, {Size(v.SizeBytes)}{(r.IsStable ? " (stable: the first version)" : "")}");
            Console.WriteLine($"  stored at {r.StoredAt}{(r.TarballWasThere ? " (already there: another version has the same image)" : "")}");
            foreach (var note in v.LockDown)
            {
                Console.WriteLine($"  note: the image {note}; it is run locked down all the same");
            }

            Console.WriteLine($"  use it as  image: algorithm://{v.Name}@{v.Version}");
            return Cli.Ok;
        }

        /// <summary>Through the server: a local image is saved from this machine's engine to a file first, then sent as the body.</summary>
        private static async Task<PushResult> PushToServerAsync(Settings settings, CancellationToken cancellationToken)
        {
            using var client = Remote.Client(settings);
            if (File.Exists(settings.Image))
            {
                return await client.PushAlgorithmAsync(settings.Name, settings.Version, settings.Image, settings.Digest, settings.Notes, cancellationToken).ConfigureAwait(false);
            }

            // This machine's engine, through the same wiring as every host's: the image seam alone.
            await using var containers = new ServiceCollection().AddContainers(EngineSettings.Read(EngineHost.Configuration(settings.Config)).Docker).BuildServiceProvider();
            var images = containers.GetRequiredService<Pipelines.Containers.IContainerImages>();
            var id = await images.ResolveImageAsync(settings.Image, cancellationToken).ConfigureAwait(false);
            var temp = Path.Combine(Path.GetTempPath(), $"pipelines-push-{Guid.NewGuid():N}.tar");
            try
            {
                await using (var file = File.Create(temp))
                {
                    await images.SaveImageAsync(settings.Image, file, cancellationToken).ConfigureAwait(false);
                }

                return await client.PushAlgorithmAsync(settings.Name, settings.Version, temp, settings.Digest ?? id, settings.Notes, cancellationToken).ConfigureAwait(false);
            }
            finally
            {
                File.Delete(temp);
            }
        }

        private static async Task<PushResult> PushHereAsync(Settings settings, CancellationToken cancellationToken)
        {
            using var host = await StartAsync(settings, cancellationToken).ConfigureAwait(false);
            var service = host.Services.GetRequiredService<AlgorithmService>();
            PushResult r;
            if (File.Exists(settings.Image))
            {
                await using var file = File.OpenRead(settings.Image);
                r = await service.PushAsync(settings.Name, settings.Version, file, settings.Digest, settings.Notes, Who(), cancellationToken).ConfigureAwait(false);
            }
            else
            {
                r = await service.PushLocalImageAsync(settings.Name, settings.Version, settings.Image, settings.Notes, Who(), cancellationToken).ConfigureAwait(false);
            }

            return r;
        }
    }

    /// <summary>`pipelines algorithm list [NAME] [--json]`.</summary>
    public sealed class ListCommand : AsyncCommand<ListCommand.Settings>
    {
        public const string Schema = "pipelines.algorithms/1";

        public sealed class Settings : CommonSettings
        {
            [CommandArgument(0, "[NAME]")]
            [Description("Only this algorithm.")]
            public string? Name { get; init; }

            [CommandOption("--json")]
            [Description("Print the algorithms as JSON (schema pipelines.algorithms/1, docs/cli.md).")]
            public bool Json { get; init; }
        }

        /// <summary>The algorithms as --json prints them.</summary>
        internal sealed record AlgorithmsDocument(IReadOnlyList<AlgorithmSummary> Algorithms);

        public override async Task<int> ExecuteAsync(CommandContext context, Settings settings, CancellationToken cancellationToken)
        {
            using var host = await StartAsync(settings, cancellationToken).ConfigureAwait(false);
            var list = await host.Services.GetRequiredService<AlgorithmService>().ListAsync(settings.Name, cancellationToken).ConfigureAwait(false);
            if (list.Count == 0 && settings.Name is not null)
            {
                throw new NotFoundException($"no algorithm is named {settings.Name}");
            }

            if (settings.Json)
            {
                JsonOut.Write(Schema, new AlgorithmsDocument(list));
                return Cli.Ok;
            }

            if (list.Count == 0)
            {
                Console.WriteLine("no algorithms pushed (`pipelines algorithm push NAME VERSION IMAGE` adds one)");
                return Cli.Ok;
            }

            foreach (var a in list)
            {
                Print(a, verbose: false);
            }

            return Cli.Ok;
        }

        internal static void Print(AlgorithmSummary a, bool verbose)
        {
            var channels = string.Join(", ", a.Channels.Select(c => c.Channel == AlgorithmReference.Canary ? $"{(c.Shadow ? "shadow canary" : "canary")} {c.Version} ({c.Percent}%)" : $"{c.Channel} {c.Version}"));
            Console.WriteLine($"{a.Name}: {a.Versions.Count} version(s){(channels.Length > 0 ? "; " + channels : "")}");
            foreach (var v in a.Versions)
            {
                var marks = string.Concat(a.Channels.Where(c => c.Version == v.Version).Select(c => " [" + c.Channel + "]"));
                Console.WriteLine($"  {v.Version,-10} {v.Digest[..19]}  {Size(v.SizeBytes),10}  {v.PushedAt.UtcDateTime:u}  {v.PushedBy}{marks}");
                if (verbose)
                {
                    Console.WriteLine($"             digest {v.Digest}");
                    if (v.RepoTags.Count > 0)
                    {
                        Console.WriteLine($"             tags   {string.Join(", ", v.RepoTags)}");
                    }

                    if (v.Notes is not null)
                    {
                        Console.WriteLine($"             notes  {v.Notes}");
                    }

                    foreach (var note in v.LockDown)
                    {
                        Console.WriteLine($"             locked down: the image {note}");
                    }
                }
            }
        }
    }

    /// <summary>`pipelines algorithm show NAME [--json]`: every version with digest, tags, notes, and the recent loads on workers.</summary>
    public sealed class ShowCommand : AsyncCommand<ShowCommand.Settings>
    {
        public const string Schema = "pipelines.algorithm/1";

        public sealed class Settings : CommonSettings
        {
            [CommandArgument(0, "<NAME>")]
            [Description("The algorithm's name.")]
            public string Name { get; init; } = "";

            [CommandOption("--json")]
            [Description("Print the algorithm as JSON (schema pipelines.algorithm/1, docs/cli.md).")]
            public bool Json { get; init; }
        }

        /// <summary>An algorithm as --json prints it: its versions, channels and events, and each version's recent loads.</summary>
        internal sealed record AlgorithmDocument(AlgorithmSummary Algorithm, IReadOnlyDictionary<string, IReadOnlyList<ImageLoad>> Loads);

        public override async Task<int> ExecuteAsync(CommandContext context, Settings settings, CancellationToken cancellationToken)
        {
            using var host = await StartAsync(settings, cancellationToken).ConfigureAwait(false);
            var a = (await host.Services.GetRequiredService<AlgorithmService>().ListAsync(settings.Name, cancellationToken).ConfigureAwait(false)).SingleOrDefault()
                ?? throw new NotFoundException($"no algorithm is named {settings.Name} (`pipelines algorithm list` lists them)");
            if (settings.Json)
            {
                var loads = new Dictionary<string, IReadOnlyList<ImageLoad>>(StringComparer.Ordinal);
                foreach (var v in a.Versions)
                {
                    loads[v.Version] = await host.Services.GetRequiredService<IAlgorithmStore>().LoadsAsync(v.Digest, 5, cancellationToken).ConfigureAwait(false);
                }

                JsonOut.Write(Schema, new AlgorithmDocument(a, loads));
                return Cli.Ok;
            }

            ListCommand.Print(a, verbose: true);
            foreach (var e in a.Events)
            {
                Console.WriteLine($"  {e.At.UtcDateTime:u}  {e.Action} {e.Version}{(e.Percent is { } p && e.Action is ChannelEvent.CanaryAction or ChannelEvent.ShadowAction ? $" ({p}%)" : "")} by {e.By}{(e.Reason is null ? "" : ": " + e.Reason)}");
            }

            var catalog = host.Services.GetRequiredService<IAlgorithmStore>();
            foreach (var v in a.Versions)
            {
                foreach (var l in await catalog.LoadsAsync(v.Digest, 5, cancellationToken).ConfigureAwait(false))
                {
                    Console.WriteLine($"  loaded {v.Version} on {l.Worker} at {l.LoadedAt.UtcDateTime:u} in {l.Seconds.ToString("0.00", CultureInfo.InvariantCulture)} s");
                }
            }

            return Cli.Ok;
        }
    }

    /// <summary>`pipelines algorithm delete NAME VERSION`.</summary>
    public sealed class DeleteCommand : AsyncCommand<VersionSettings>
    {
        public override async Task<int> ExecuteAsync(CommandContext context, VersionSettings settings, CancellationToken cancellationToken)
        {
            using var host = await StartAsync(settings, cancellationToken).ConfigureAwait(false);
            var v = await host.Services.GetRequiredService<AlgorithmService>().DeleteAsync(settings.Name, settings.Version, cancellationToken).ConfigureAwait(false)
                ?? throw new PipelinesException($"there is no {settings.Name}@{settings.Version} (`pipelines algorithm show {settings.Name}` lists its versions)", retryHelps: false);
            Console.WriteLine($"deleted {v.Name}@{v.Version} ({v.Digest}); runs that pinned it keep their digest, and workers that have the image keep it");
            return Cli.Ok;
        }
    }

    /// <summary>`pipelines algorithm promote NAME VERSION`: the version becomes stable.</summary>
    public sealed class PromoteCommand : AsyncCommand<VersionSettings>
    {
        public override async Task<int> ExecuteAsync(CommandContext context, VersionSettings settings, CancellationToken cancellationToken)
        {
            using var host = await StartAsync(settings, cancellationToken).ConfigureAwait(false);
            await host.Services.GetRequiredService<AlgorithmService>().PromoteAsync(settings.Name, settings.Version, Who(), cancellationToken).ConfigureAwait(false);
            Console.WriteLine($"{settings.Name}@stable is now {settings.Version}");
            return Cli.Ok;
        }
    }

    /// <summary>`pipelines algorithm canary NAME VERSION --percent N [--shadow]`: the version becomes the canary channel.</summary>
    public sealed class CanaryCommand : AsyncCommand<CanaryCommand.Settings>
    {
        public sealed class Settings : VersionSettings
        {
            [CommandOption("--percent <N>")]
            [Description("The share of the invocations of functions following @stable routed to the canary (0-100, default 10); with --shadow, the share copied to it (default 100).")]
            public int? Percent { get; init; }

            [CommandOption("--shadow")]
            [Description("Shadow mode: stable answers every caller; a copy of the request goes to the canary and whether the outputs were equal is recorded.")]
            public bool Shadow { get; init; }
        }

        public override async Task<int> ExecuteAsync(CommandContext context, Settings settings, CancellationToken cancellationToken)
        {
            var percent = settings.Percent ?? (settings.Shadow ? 100 : 10);
            using var host = await StartAsync(settings, cancellationToken).ConfigureAwait(false);
            await host.Services.GetRequiredService<AlgorithmService>().CanaryAsync(settings.Name, settings.Version, percent, Who(), cancellationToken, settings.Shadow).ConfigureAwait(false);
            Console.WriteLine(settings.Shadow
                ? $"{settings.Name}@canary is now {settings.Version} in shadow mode: {percent}% of the requests are copied to it, stable answers them all"
                : $"{settings.Name}@canary is now {settings.Version} ({percent}% of the invocations of functions following @stable)");
            return Cli.Ok;
        }
    }

    /// <summary>`pipelines algorithm abort NAME`: the canary channel ends.</summary>
    public sealed class AbortCommand : AsyncCommand<AbortCommand.Settings>
    {
        public sealed class Settings : CommonSettings
        {
            [CommandArgument(0, "<NAME>")]
            [Description("The algorithm's name.")]
            public string Name { get; init; } = "";
        }

        public override async Task<int> ExecuteAsync(CommandContext context, Settings settings, CancellationToken cancellationToken)
        {
            using var host = await StartAsync(settings, cancellationToken).ConfigureAwait(false);
            var ended = await host.Services.GetRequiredService<AlgorithmService>().AbortCanaryAsync(settings.Name, Who(), cancellationToken).ConfigureAwait(false);
            Console.WriteLine(ended ? $"{settings.Name} has no canary now; every reference goes to stable" : $"{settings.Name} had no canary; every reference goes to stable");
            return Cli.Ok;
        }
    }
}
