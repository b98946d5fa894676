using Pipelines.Tests.Support;

namespace Pipelines.Tests.Server;

/// <summary>The same isolation through the CLI: `--server` with a tenant's key, and an admin key with `--tenant`.</summary>
public sealed partial class TenantIsolationTests
{
    /// <summary>The run verbs that name a run (the run id is appended).</summary>
    public static TheoryData<string> RunVerbs() => new() { "status", "logs", "explain", "cancel" };

    [Theory]
    [MemberData(nameof(RunVerbs))]
    public async Task The_cli_with_a_tenants_key_on_another_tenants_run_exits_4_with_the_missing_runs_line(string verb)
    {
        var foreign = await CliAsync(verb, fixture.LabBRun, "--key", TenantServerFixture.LabAFull);
        var missing = await CliAsync(verb, NoRun, "--key", TenantServerFixture.LabAFull);

        Assert.True(missing.ExitCode == 4, missing.ToString());
        Assert.True(foreign.ExitCode == 4, foreign.ToString());
        Assert.Equal(missing.Stderr.Trim(), foreign.Stderr.Replace(fixture.LabBRun, NoRun, StringComparison.Ordinal).Trim());
    }

    [Fact]
    public async Task An_admin_key_with_tenant_sees_only_that_tenants_runs_and_without_it_every_tenants()
    {
        var asA = await CliAsync("status", fixture.LabBRun, "--key", TenantServerFixture.Admin, "--tenant", "lab-a");
        Assert.True(asA.ExitCode == 4, asA.ToString());

        var asB = await CliAsync("status", fixture.LabBRun, "--key", TenantServerFixture.Admin, "--tenant", "lab-b");
        Assert.True(asB.ExitCode == 0, asB.ToString());
        Assert.Contains(fixture.LabBRun, asB.Stdout, StringComparison.Ordinal);

        var all = await CliAsync("runs", "--key", TenantServerFixture.Admin);
        Assert.True(all.ExitCode == 0, all.ToString());
        Assert.Contains(fixture.LabBRun, all.Stdout, StringComparison.Ordinal);

        var onlyA = await CliAsync("runs", "--key", TenantServerFixture.Admin, "--tenant", "lab-a");
        Assert.True(onlyA.ExitCode == 0, onlyA.ToString());
        Assert.DoesNotContain(fixture.LabBRun, onlyA.Stdout, StringComparison.Ordinal);

        // A tenant's own key ignores --tenant: lab-a's key naming lab-b still sees lab-a's only.
        var claimed = await CliAsync("status", fixture.LabBRun, "--key", TenantServerFixture.LabAFull, "--tenant", "lab-b");
        Assert.True(claimed.ExitCode == 4, claimed.ToString());
    }

    [Fact]
    public async Task A_tenant_that_is_not_a_tenant_name_is_refused_by_the_cli_naming_the_option()
    {
        var refused = await CliAsync("runs", "--key", TenantServerFixture.Admin, "--tenant", "Lab A");

        Assert.NotEqual(0, refused.ExitCode);
        Assert.Contains("--tenant", refused.Stderr, StringComparison.Ordinal);
        Assert.Contains("Lab A", refused.Stderr, StringComparison.Ordinal);
    }

    private Task<CliRunner.Result> CliAsync(params string[] args) =>
        CliRunner.RunAsync([.. args, "--server", fixture.Server.Url], fixture.Env);
}
