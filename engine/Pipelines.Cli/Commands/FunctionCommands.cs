using System.ComponentModel;
using System.Globalization;
using Pipelines.Model;
using Spectre.Console.Cli;

namespace Pipelines.Cli.Commands;

/// <summary>The options of the function commands: they talk to a `pipelines server`.</summary>
public class FunctionServerSettings : CommonSettings, IRemoteSettings
{
    [CommandOption("--server <URL>")]
    [Description("The `pipelines server` (default PIPELINES_SERVER, else http://127.0.0.1:8080).")]
    public string? Server { get; init; }

    [CommandOption("--key <KEY>")]
    [Description("The server's access key (default PIPELINES_SERVER_KEY).")]
    public string? Key { get; init; }

    [CommandOption("--tenant <ID>")]
    [Description(Remote.TenantHelp)]
    public string? Tenant { get; init; }

    internal ServerClient Client() => Remote.Client(this, Remote.ServerOf(this) ?? Pipelines.Server.ServerOptions.DefaultUrls);
}

/// <summary>The options of a function command that prints: --json too.</summary>
public class FunctionJsonSettings : FunctionServerSettings
{
    [CommandOption("--json")]
    [Description("Print JSON for scripts (docs/cli.md names the schema of each command).")]
    public bool Json { get; init; }
}

/// <summary>The settings of a command that names one function.</summary>
public class FunctionNameSettings : FunctionServerSettings
{
    [CommandArgument(0, "<NAME>")]
    [Description("The function's name.")]
    public string Name { get; init; } = "";
}

/// <summary>`pipelines function deploy FILE`: validate the function file and deploy it on the server.</summary>
public sealed class FunctionDeployCommand : AsyncCommand<FunctionDeployCommand.Settings>
{
    public const string Schema = "pipelines.deployed/1";

    public sealed class Settings : FunctionJsonSettings
    {
        [CommandArgument(0, "<FILE>")]
        [Description("The function file (YAML).")]
        public string File { get; init; } = "";
    }

    public override async Task<int> ExecuteAsync(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        if (!System.IO.File.Exists(settings.File))
        {
            throw new PipelinesException($"{settings.File} does not exist", retryHelps: false);
        }

        var yaml = await System.IO.File.ReadAllTextAsync(settings.File, cancellationToken).ConfigureAwait(false);

        // Checked here first, so a mistake is shown with its line without a server round trip.
        Functions.FunctionParser.Parse(yaml, settings.File);
        using var client = settings.Client();
        var result = await client.DeployFunctionAsync(yaml, settings.File, cancellationToken).ConfigureAwait(false);
        if (settings.Json)
        {
            JsonOut.Write(Schema, result);
            return Cli.Ok;
        }

        var f = result.Function;
        Console.WriteLine(result.Created
            ? $"deployed {f.Name} version {f.Version}{(result.Replaced is { } old ? $" (was {old})" : "")}: {f.Image} ({f.ImageDigest}), {f.Mode} mode"
            : $"{f.Name} version {f.Version} is already this content: nothing changed");
        Console.WriteLine($"  invoke: pipelines invoke {f.Name} FILE   or   POST {f.InvokeUrl}");
        return Cli.Ok;
    }
}

/// <summary>`pipelines function list [--json]`: every function's current version.</summary>
public sealed class FunctionListCommand : AsyncCommand<FunctionJsonSettings>
{
    public const string Schema = "pipelines.functions/1";

    /// <summary>The functions as --json prints them.</summary>
    internal sealed record FunctionsDocument(IReadOnlyList<Pipelines.Server.Api.FunctionView> Functions);

    public override async Task<int> ExecuteAsync(CommandContext context, FunctionJsonSettings settings, CancellationToken cancellationToken)
    {
        using var client = settings.Client();
        var list = await client.ListFunctionsAsync(cancellationToken).ConfigureAwait(false);
        if (settings.Json)
        {
            JsonOut.Write(Schema, new FunctionsDocument(list));
            return Cli.Ok;
        }

        if (list.Count == 0)
        {
            Console.WriteLine("no functions deployed (`pipelines function deploy FILE` deploys one)");
            return Cli.Ok;
        }

        foreach (var f in list)
        {
            Console.WriteLine($"{f.Name}  version {f.Version}  {f.Mode}  {f.Image}  deployed {f.DeployedAt.UtcDateTime:u} by {f.DeployedBy}");
        }

        return Cli.Ok;
    }
}

/// <summary>`pipelines function show NAME [--json]`: a function's version, limits, figures and warm containers.</summary>
public sealed class FunctionShowCommand : AsyncCommand<FunctionShowCommand.Settings>
{
    public const string Schema = "pipelines.function/1";

    public sealed class Settings : FunctionNameSettings
    {
        [CommandOption("--json")]
        [Description("Print the function as JSON (schema pipelines.function/1, docs/cli.md).")]
        public bool Json { get; init; }
    }

    public override async Task<int> ExecuteAsync(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        using var client = settings.Client();
        var d = await client.GetFunctionAsync(settings.Name, cancellationToken).ConfigureAwait(false);
        if (settings.Json)
        {
            JsonOut.Write(Schema, d);
            return Cli.Ok;
        }

        var f = d.Function;
        Console.WriteLine($"{f.Name} version {f.Version}: {f.Mode} mode, {f.Image} ({f.ImageDigest})");
        if (f.Description is not null)
        {
            Console.WriteLine("  " + f.Description);
        }

        if (f.Command.Count > 0)
        {
            Console.WriteLine("  command:  " + string.Join(' ', f.Command));
        }

        Console.WriteLine($"  limits:   timeout {f.Timeout}, max request {Quantities.FormatSize(f.MaxRequestBytes)}, concurrency {f.Concurrency}, min_warm {f.MinWarm}, max {f.Max}, queue {f.Queue}, idle_timeout {f.IdleTimeout}");
        Console.WriteLine($"  deployed: {f.DeployedAt.UtcDateTime:u} by {f.DeployedBy}; {d.Versions.Count} version(s)");
        if (d.Release is { } r)
        {
            Console.WriteLine($"  release:  follows {r.Algorithm}@stable: stable {r.Stable}"
                + (r.Canary is null ? ", no canary" : r.Shadow ? $", shadow canary {r.Canary} ({r.Percent}% copied)" : $", canary {r.Canary} ({r.Percent}%)"));
            foreach (var e in r.Events.Take(3))
            {
                Console.WriteLine($"            {e.At.UtcDateTime:u} {e.Action} {e.Version} by {e.By}{(e.Reason is null ? "" : ": " + e.Reason)}");
            }
        }

        foreach (var s in d.Stats)
        {
            var who = $"version {s.Version}{(s.AlgorithmVersion is null ? "" : $" ({(s.Shadow ? "shadow copies on " : "algorithm ")}{s.AlgorithmVersion})")}";
            Console.WriteLine($"  {who}: {s.Requests} request(s), {s.Errors} error(s) ({Rate(s.ErrorRate)}), p50 {Ms(s.P50Ms)}, p95 {Ms(s.P95Ms)}"
                + (s.ColdStarts > 0 ? $" ({s.ColdStarts} cold start(s); p95 without them {Ms(s.WarmP95Ms)})" : "")
                + (s.Shadow ? $", {s.Equal} equal to stable, {s.Different} different" + (s.Refused > 0 ? $", {s.Refused} dropped" : "") : ""));
        }

        foreach (var w in d.Warm)
        {
            Console.WriteLine($"  version {w.Version}{(w.AlgorithmVersion is null ? "" : " (" + w.AlgorithmVersion + ")")}: {w.Warm} warm container(s), {w.Busy} busy, {w.Starting} starting, {w.Waiting} request(s) waiting"
                + (w.Held is null ? "" : $"; not started: {w.Held}"));
        }

        return Cli.Ok;
    }

    private static string Ms(double? ms) => ms is { } v ? v.ToString("0.#", CultureInfo.InvariantCulture) + " ms" : "-";

    private static string Rate(double? rate) => rate is { } v ? (v * 100).ToString("0.#", CultureInfo.InvariantCulture) + "%" : "-";
}

/// <summary>`pipelines function delete NAME`: the function, its versions and invocations go; its warm containers stop.</summary>
public sealed class FunctionDeleteCommand : AsyncCommand<FunctionNameSettings>
{
    public override async Task<int> ExecuteAsync(CommandContext context, FunctionNameSettings settings, CancellationToken cancellationToken)
    {
        using var client = settings.Client();
        await client.DeleteFunctionAsync(settings.Name, cancellationToken).ConfigureAwait(false);
        Console.WriteLine($"deleted {settings.Name}");
        return Cli.Ok;
    }
}

/// <summary>`pipelines invoke NAME FILE [-o OUT]`: the file is the input, the output goes to OUT or stdout.</summary>
public sealed class InvokeCommand : AsyncCommand<InvokeCommand.Settings>
{
    public sealed class Settings : FunctionNameSettings
    {
        [CommandArgument(1, "<FILE>")]
        [Description("The input file (sent as the body; the command sees it at /in/<its name>).")]
        public string File { get; init; } = "";

        [CommandOption("-o|--output <OUT>")]
        [Description("Write the output to this file (default: stdout).")]
        public string? Output { get; init; }
    }

    public override async Task<int> ExecuteAsync(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        if (!System.IO.File.Exists(settings.File))
        {
            throw new PipelinesException($"{settings.File} does not exist", retryHelps: false);
        }

        using var client = settings.Client();
        if (settings.Output is null)
        {
            await using var stdout = Console.OpenStandardOutput();
            await client.InvokeAsync(settings.Name, settings.File, stdout, cancellationToken).ConfigureAwait(false);
            return Cli.Ok;
        }

        // Written beside the target and renamed, so a failed call leaves no half file under its name.
        var partial = settings.Output + ".partial";
        try
        {
            (string? ContentType, string? Invocation) answer;
            await using (var file = new FileStream(partial, FileMode.Create, FileAccess.Write))
            {
                answer = await client.InvokeAsync(settings.Name, settings.File, file, cancellationToken).ConfigureAwait(false);
            }

            System.IO.File.Move(partial, settings.Output, overwrite: true);
            Console.Error.WriteLine($"{settings.Output}: {new FileInfo(settings.Output).Length} bytes, {answer.ContentType} (invocation {answer.Invocation})");
            return Cli.Ok;
        }
        finally
        {
            System.IO.File.Delete(partial);
        }
    }
}
