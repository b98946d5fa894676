using Pipelines.Tests.Support;

namespace Pipelines.Tests.Deploy;

/// <summary>
/// The deployment's images, made by scripts/build-deploy-images. scripts/test starts that script
/// in the background before it builds the solution (from nothing it takes minutes, and only the
/// compose tests need it) and names in PIPELINES_DEPLOY_IMAGES_STATUS the file its exit code will
/// be written to (beside it, `.log` holds what it printed); without that variable the script is run
/// here.
/// </summary>
internal static class DeployImages
{
    public const string StatusVariable = "PIPELINES_DEPLOY_IMAGES_STATUS";

    /// <summary>What the script printed, once it ended with 0; a failure says what it printed.</summary>
    public static async Task<string> BuiltAsync(TimeSpan limit)
    {
        var script = Path.Combine(TestEnvironment.RepoRoot, "scripts", "build-deploy-images");
        if (Environment.GetEnvironmentVariable(StatusVariable) is not { Length: > 0 } status)
        {
            return await HostCommand.CheckAsync(script, [], timeout: limit);
        }

        await WaitForFileAsync(status, limit);
        var log = Path.ChangeExtension(status, ".log");
        var output = File.Exists(log) ? await File.ReadAllTextAsync(log) : "(no log at " + log + ")";
        var code = (await File.ReadAllTextAsync(status)).Trim();
        Assert.True(code == "0", $"{script}, run in the background by scripts/test, exited {code}:\n{output}");
        return output;
    }

    /// <summary>Waits for the file to appear (written whole: the script moves it into place).</summary>
    private static async Task WaitForFileAsync(string path, TimeSpan limit)
    {
        var folder = Path.GetDirectoryName(path)!;
        var appeared = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var watcher = new FileSystemWatcher(folder, Path.GetFileName(path)) { EnableRaisingEvents = true };
        watcher.Created += (_, _) => appeared.TrySetResult();
        watcher.Renamed += (_, _) => appeared.TrySetResult();
        if (File.Exists(path))
        {
            return;
        }

        try
        {
            await appeared.Task.WaitAsync(limit);
        }
        catch (TimeoutException) when (!File.Exists(path))
        {
            throw new TimeoutException($"scripts/build-deploy-images did not end within {limit} ({path} was not written)");
        }
    }
}
