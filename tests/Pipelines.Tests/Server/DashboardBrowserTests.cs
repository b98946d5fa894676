using System.Diagnostics;
using System.Net.Http.Json;
using Pipelines.Tests.Support;

namespace Pipelines.Tests.Server;

/// <summary>
/// The dashboard as a person sees it: headless Chromium (Debian's package, driven by
/// playwright-core from tests/browser) logs in with a key and opens the Runs page while a run
/// is in flight. The screenshot is kept in .build/test-results/dashboard-runs.png.
/// </summary>
[Collection(ServerCollection.Name)]
[Integration]
public sealed class DashboardBrowserTests(KeyedServerFixture fixture)
{
    [Fact]
    public async Task A_person_logs_in_and_sees_the_run_in_flight_on_the_Runs_page()
    {
        using var http = fixture.Server.Client(ServerFixture.FullKey);
        var runId = await ServerFixture.SubmitAsync(http, fixture.SleepWorkflow);
        try
        {
            await ServerFixture.WaitForAsync(http, runId, r => r.GetProperty("counts").GetProperty("running").GetInt32() > 0, TimeSpan.FromMinutes(1));
            var png = Path.Combine(TestEnvironment.RepoRoot, ".build", "test-results", "dashboard-runs.png");
            Directory.CreateDirectory(Path.GetDirectoryName(png)!);
            File.Delete(png);

            var result = await NodeAsync(Path.Combine(TestEnvironment.RepoRoot, "tests", "browser", "dashboard.mjs"), fixture.Server.Url, ServerFixture.ReadKey, runId, png);

            Assert.True(result.ExitCode == 0, result.ToString());
            Assert.True(new FileInfo(png).Length > 10_000, "the screenshot is missing or empty");
        }
        finally
        {
            using var cancel = await http.PostAsync($"/api/runs/{runId}/cancel", null);
            await ServerFixture.WaitForAsync(http, runId, r => r.GetProperty("state").GetString() == "cancelled", TimeSpan.FromSeconds(60));
        }
    }

    private static async Task<CliRunner.Result> NodeAsync(params string[] args)
    {
        var psi = new ProcessStartInfo("node") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = TestEnvironment.RepoRoot };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        try
        {
            await p.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException("node " + string.Join(' ', args) + " did not end in 2 minutes");
        }

        return new CliRunner.Result(p.ExitCode, await stdout, await stderr);
    }
}
