using Microsoft.Extensions.Configuration;
using Pipelines.Functions;
using Pipelines.Model;
using Pipelines.Tenancy;
using Pipelines.Tests.Support;

namespace Pipelines.Tests.Tenancy;

/// <summary>
/// The largest resources a tenant's step or function may ask for (ResourceCeiling): each field over
/// its quota is one problem naming the field, the value asked and the limit; a tenant's own quota
/// wins over the defaults; a server without quotas refuses nothing.
/// </summary>
[Unit]
public sealed class ResourceCeilingTests
{
    private static readonly TenantId LabA = TenantId.Parse("lab-a", "test");

    private static readonly TenantOptions Options = TenantOptions.From(
        new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Tenancy:Defaults:Quotas:MaxMemory"] = "4Gi",
            ["Tenancy:Defaults:Quotas:MaxCpus"] = "2",
            ["Tenancy:Defaults:Quotas:MaxTimeout"] = "1h",
            ["Tenancy:Defaults:Quotas:MaxDisk"] = "10Gi",
            ["Tenants:lab-a:Output"] = "s3://data/lab-a/",
            ["Tenants:lab-a:Quotas:MaxMemory"] = "8Gi",
            ["Tenants:lab-b:Output"] = "s3://data/lab-b/",
        }).Build(),
        _ => false);

    private static Workflow Flow(string resources) =>
        WorkflowParser.Parse($$"""
            version: 1
            name: t
            input:
              uri: s3://data/lab-a/reads/
            steps:
              - name: small
                image: tools/stats:1
                command: ["stats", "{inputs}"]
              - name: second
                image: tools/stats:1
                command: ["stats", "{inputs}"]
              - name: big
                image: tools/stats:1
                command: ["stats", "{inputs}"]
                resources: {{resources}}
            output:
              uri: s3://data/lab-a/results/
            """, "api", baseDirectory: null);

    [Fact]
    public void A_step_asking_for_more_memory_than_the_default_quota_is_refused_naming_its_field_and_the_limit()
    {
        var problem = Assert.Single(Assert.Throws<WorkflowInvalidException>(() => ResourceCeiling.Check(Flow("{memory: 8Gi}"), TenantId.Default, Options)).Problems);

        Assert.Equal("steps[2].resources.memory", problem.Path);
        Assert.Equal("8Gi is over this tenant's limit of 4Gi (quota MaxMemory)", problem.Message);
    }

    [Fact]
    public void A_tenants_own_quota_is_read_over_the_defaults()
    {
        ResourceCeiling.Check(Flow("{memory: 8Gi}"), LabA, Options);

        var problem = Assert.Single(Assert.Throws<WorkflowInvalidException>(() => ResourceCeiling.Check(Flow("{memory: 9Gi}"), LabA, Options)).Problems);
        Assert.Equal("9Gi is over this tenant's limit of 8Gi (quota MaxMemory)", problem.Message);
    }

    [Fact]
    public void Every_field_over_its_quota_is_a_problem_of_its_own()
    {
        var problems = Assert.Throws<WorkflowInvalidException>(() => ResourceCeiling.Check(Flow("{cpus: 2.5, memory: 5Gi, timeout: 2h, disk: 11Gi}"), TenantId.Default, Options)).Problems;

        Assert.Equal(
            [
                ("steps[2].resources.cpus", "2.5 CPUs is over this tenant's limit of 2 (quota MaxCpus)"),
                ("steps[2].resources.memory", "5Gi is over this tenant's limit of 4Gi (quota MaxMemory)"),
                ("steps[2].resources.timeout", "2h is over this tenant's limit of 1h (quota MaxTimeout)"),
                ("steps[2].resources.disk", "11Gi is over this tenant's limit of 10Gi (quota MaxDisk)"),
            ],
            problems.Select(p => (p.Path, p.Message)));
    }

    [Fact]
    public void Asking_for_exactly_the_limit_passes()
    {
        ResourceCeiling.Check(Flow("{cpus: 2, memory: 4Gi, timeout: 1h, disk: 10Gi}"), TenantId.Default, Options);
    }

    [Fact]
    public void A_quota_below_a_default_refuses_the_step_that_left_the_field_unset()
    {
        var tight = TenantOptions.From(
            new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?> { ["Tenancy:Defaults:Quotas:MaxMemory"] = "256Mi" }).Build(),
            _ => false);

        var problems = Assert.Throws<WorkflowInvalidException>(() => ResourceCeiling.Check(Flow("{cpus: 1}"), TenantId.Default, tight)).Problems;

        Assert.Equal(["steps[0].resources.memory", "steps[1].resources.memory", "steps[2].resources.memory"], problems.Select(p => p.Path));
    }

    [Fact]
    public void A_server_without_quotas_refuses_no_size()
    {
        ResourceCeiling.Check(Flow("{cpus: 64, memory: 200Gi, timeout: 30d, disk: 1Ti}"), TenantId.Default, TenantOptions.None);
    }

    [Fact]
    public void A_function_over_its_tenants_quota_has_a_problem_naming_the_function_files_field()
    {
        var spec = FunctionParser.Parse("""
            name: f
            image: tools/f:1
            command: ["f"]
            resources:
              timeout: 2h
            """, "the function file");

        // FunctionService.DeployAsync refuses with these problems (TenantQuotaTests deploys one through the server).
        var problem = Assert.Single(ResourceCeiling.Problems(spec.Resources, "resources", Options.Settings(TenantId.Default).Quotas));
        Assert.Equal(("resources.timeout", "2h is over this tenant's limit of 1h (quota MaxTimeout)"), (problem.Path, problem.Message));
    }
}
