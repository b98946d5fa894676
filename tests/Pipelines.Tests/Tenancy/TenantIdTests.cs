using Pipelines.Tenancy;

namespace Pipelines.Tests.Tenancy;

/// <summary>Tenant names and scopes: what is a name, and what a scope admits.</summary>
[Unit]
public sealed class TenantIdTests
{
    [Theory]
    [InlineData("default")]
    [InlineData("lab-a")]
    [InlineData("0")]
    [InlineData("a234567890123456789012345678901234567890")]
    public void Lower_case_names_of_up_to_40_characters_are_tenants(string name)
    {
        Assert.Equal(name, TenantId.Parse(name, "test").Value);
    }

    [Theory]
    [InlineData("")]
    [InlineData("Lab")]
    [InlineData("-lab")]
    [InlineData("lab a")]
    [InlineData("lab/a")]
    [InlineData("a2345678901234567890123456789012345678901")]
    public void Other_text_is_not_a_tenant_and_the_refusal_names_where_it_was_written(string text)
    {
        Assert.Null(TenantId.TryParse(text));
        Assert.StartsWith("Server:Keys:3:Tenant: '", Assert.Throws<PipelinesException>(() => TenantId.Parse(text, "Server:Keys:3:Tenant")).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_uninitialised_tenant_is_the_default_one_and_equals_it()
    {
        Assert.Equal(TenantId.Default, default);
        Assert.True(default(TenantId).IsDefault);
        Assert.Equal("default", default(TenantId).ToString());
    }

    [Fact]
    public void A_scope_of_one_tenant_admits_only_it_and_all_admits_every_tenant()
    {
        var a = TenantId.Parse("lab-a", "test");
        var b = TenantId.Parse("lab-b", "test");

        Assert.True(TenantScope.Of(a).Admits(a));
        Assert.False(TenantScope.Of(a).Admits(b));
        Assert.True(TenantScope.All.Admits(b));
        Assert.Equal(TenantScope.Of(a), TenantScope.Of(TenantId.Parse("lab-a", "again")));
    }
}
