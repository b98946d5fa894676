using Microsoft.Extensions.Configuration;
using Pipelines.Tenancy;

namespace Pipelines.Tests.Tenancy;

/// <summary>The Tenants section as the operator writes it: what is read, and what stops the server at start.</summary>
[Unit]
public sealed class TenantOptionsTests
{
    private static IConfiguration Config(params (string Key, string Value)[] values) =>
        new ConfigurationBuilder().AddInMemoryCollection(values.Select(v => new KeyValuePair<string, string?>(v.Key, v.Value))).Build();

    private static TenantOptions Read(params (string Key, string Value)[] values) => TenantOptions.From(Config(values), path => path.StartsWith("/srv/data/", StringComparison.Ordinal));

    private static string Refusal(params (string Key, string Value)[] values) => Assert.Throws<PipelinesException>(() => Read(values)).Message;

    [Fact]
    public void Without_a_Tenants_section_the_default_tenant_is_the_only_one()
    {
        var options = Read();

        Assert.False(options.Configured);
        Assert.Equal(["default"], options.All.Select(t => t.Id.Value));
        Assert.True(options.Exists(TenantId.Default));
        Assert.False(options.Exists(TenantId.Parse("lab-a", "test")));
    }

    [Fact]
    public void Tenants_are_read_with_their_folders_normalised_and_the_default_one_exists_beside_them()
    {
        var options = Read(("Tenants:lab-a:Name", "Gene lab"), ("Tenants:lab-a:Output", "s3://lab-a"), ("Tenants:lab-a:Inputs:0", "s3://shared/reference/"),
            ("Tenants:lab-b:Output", "/srv/data/lab-b"));

        Assert.True(options.Configured);
        Assert.Equal(["default", "lab-a", "lab-b"], options.All.Select(t => t.Id.Value));
        var a = options.Settings(TenantId.Parse("lab-a", "test"));
        Assert.Equal("Gene lab", a.Name);
        Assert.Equal("s3://lab-a/", a.Output);
        Assert.Equal(["s3://shared/reference/"], a.Inputs);
        Assert.Equal("/srv/data/lab-b/", options.Settings(TenantId.Parse("lab-b", "test")).Output);
        Assert.Null(options.Settings(TenantId.Default).Output);
    }

    [Theory]
    [InlineData("Lab-A", "Tenants:Lab-A: 'Lab-A' is not a tenant name")]
    [InlineData("-lab", "Tenants:-lab: '-lab' is not a tenant name")]
    [InlineData("lab_a", "Tenants:lab_a: 'lab_a' is not a tenant name")]
    public void A_tenant_id_that_is_not_a_name_is_refused_naming_its_key(string id, string expected)
    {
        Assert.StartsWith(expected, Refusal(($"Tenants:{id}:Output", "s3://x/")), StringComparison.Ordinal);
    }

    [Fact]
    public void A_tenant_other_than_default_must_name_its_output_folder()
    {
        Assert.StartsWith("Tenants:lab-a:Output is unset", Refusal(("Tenants:lab-a:Name", "Gene lab")), StringComparison.Ordinal);
        Assert.True(Read(("Tenants:default:Name", "Operators")).Configured);
    }

    [Theory]
    [InlineData("s3://", "Tenants:lab-a:Output: 's3://' is not a folder")]
    [InlineData("s3://data/../lab-b/", "Tenants:lab-a:Output: 's3://data/../lab-b/' is not a folder")]
    [InlineData("relative/folder", "Tenants:lab-a:Output: 'relative/folder' is not a folder")]
    [InlineData("/etc/pipelines", "Tenants:lab-a:Output: '/etc/pipelines' is a local folder outside Submit:LocalRoots")]
    public void A_location_that_is_not_an_s3_folder_or_a_local_one_under_the_roots_is_refused(string output, string expected)
    {
        Assert.StartsWith(expected, Refusal(("Tenants:lab-a:Output", output)), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("s3://data/lab-a/", "s3://data/lab-a/")]
    [InlineData("s3://data/", "s3://data/lab-a/")]
    [InlineData("s3://data/lab-a/deep/", "s3://data/lab-a/")]
    public void Two_tenants_whose_folders_hold_one_another_are_refused(string bOutput, string aOutput)
    {
        var message = Refusal(("Tenants:lab-a:Output", aOutput), ("Tenants:lab-b:Output", bOutput));

        Assert.StartsWith("Tenants:lab-b:Output:", message, StringComparison.Ordinal);
        Assert.Contains("overlaps Tenants:lab-a:Output", message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_input_folder_of_one_tenant_inside_another_tenants_output_is_refused_and_siblings_by_prefix_are_not()
    {
        Assert.Contains("Tenants:lab-b:Inputs:0", Refusal(("Tenants:lab-a:Output", "s3://data/lab-a/"), ("Tenants:lab-b:Output", "s3://data/lab-b/"), ("Tenants:lab-b:Inputs:0", "s3://data/lab-a/ref/")), StringComparison.Ordinal);

        var options = Read(("Tenants:lab-a:Output", "s3://data/lab-a/"), ("Tenants:lab-ab:Output", "s3://data/lab-ab/"));
        Assert.Equal(3, options.All.Count());
    }

    [Fact]
    public void A_tenants_own_quotas_and_share_are_read_over_the_defaults_key_by_key_and_unset_is_no_limit()
    {
        var options = Read(("Tenancy:Defaults:Share", "2"), ("Tenancy:Defaults:Quotas:RunningTasks", "10"), ("Tenancy:Defaults:Quotas:MaxMemory", "4Gi"),
            ("Tenants:lab-a:Output", "s3://lab-a/"), ("Tenants:lab-a:Share", "3"), ("Tenants:lab-a:Quotas:RunningTasks", "2"), ("Tenants:lab-a:Quotas:MaxTimeout", "10m"),
            ("Tenants:lab-b:Output", "s3://lab-b/"));

        var a = options.Settings(TenantId.Parse("lab-a", "test"));
        Assert.Equal(3, a.Share);
        Assert.Equal(2, a.Quotas.RunningTasks);
        Assert.Equal(4L << 30, a.Quotas.MaxMemory);
        Assert.Equal(TimeSpan.FromMinutes(10), a.Quotas.MaxTimeout);
        Assert.Null(a.Quotas.ConcurrentInvocations);
        var b = options.Settings(TenantId.Parse("lab-b", "test"));
        Assert.Equal(2, b.Share);
        Assert.Equal(10, b.Quotas.RunningTasks);
        Assert.Null(b.Quotas.MaxTimeout);
        Assert.Equal(10, options.Settings(TenantId.Default).Quotas.RunningTasks);
        Assert.Equal(TimeSpan.FromDays(1), options.Tenancy.HalfLife);
    }

    [Theory]
    [InlineData("Tenants:lab-a:Quotas:RunningTasks", "0", "Tenants:lab-a:Quotas:RunningTasks: '0' is not above zero")]
    [InlineData("Tenants:lab-a:Share", "-1", "Tenants:lab-a:Share: '-1' is not above zero")]
    [InlineData("Tenancy:Defaults:Quotas:MaxMemory", "lots", "Tenancy:Defaults:Quotas:MaxMemory: 'lots' is not a size")]
    public void A_quota_or_share_that_is_not_a_positive_value_is_refused_naming_its_key(string key, string value, string expected) =>
        Assert.StartsWith(expected, Refusal(("Tenants:lab-a:Output", "s3://lab-a/"), (key, value)));

    [Fact]
    public void Two_tenants_may_read_one_folder_but_neither_may_read_inside_the_others_output()
    {
        var shared = Read(("Tenants:lab-a:Output", "s3://lab-a/"), ("Tenants:lab-a:Inputs:0", "s3://reference/genomes/"),
            ("Tenants:lab-b:Output", "s3://lab-b/"), ("Tenants:lab-b:Inputs:0", "s3://reference/"));
        Assert.Equal(["s3://reference/"], shared.Settings(TenantId.Parse("lab-b", "test")).Inputs);

        var message = Refusal(("Tenants:lab-a:Output", "s3://lab-a/"), ("Tenants:lab-b:Output", "s3://lab-b/"), ("Tenants:lab-b:Inputs:0", "s3://lab-a/results/"));
        Assert.StartsWith("Tenants:lab-b:Inputs:0: 's3://lab-a/results/' overlaps Tenants:lab-a:Output", message, StringComparison.Ordinal);
    }
}
