using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Pipelines.Server;
using Pipelines.Server.Access;
using Pipelines.Tenancy;

namespace Pipelines.Tests.Server;

/// <summary>Keys with tenants and the admin role: what is read, what is refused at start, and what a caller reaches.</summary>
[Unit]
public sealed class TenantKeysTests
{
    private const string KeyA = "0123456789abcdef-a";
    private const string KeyB = "0123456789abcdef-b";

    private static IConfiguration Config(params (string Key, string Value)[] values) =>
        new ConfigurationBuilder().AddInMemoryCollection(values.Select(v => new KeyValuePair<string, string?>(v.Key, v.Value))).Build();

    private static ServerOptions Read(params (string Key, string Value)[] values)
    {
        var config = Config(values);
        return ServerOptions.From(config, TenantOptions.From(config, _ => false));
    }

    private static readonly (string, string)[] TwoTenants = [("Tenants:lab-a:Output", "s3://lab-a/"), ("Tenants:lab-b:Output", "s3://lab-b/")];

    [Fact]
    public void A_key_without_a_tenant_belongs_to_the_default_one_and_a_full_key_is_admin_when_no_tenants_are_configured()
    {
        var options = Read(("Server:Keys:0:Key", KeyA), ("Server:Keys:0:Role", "full"));

        var key = Assert.Single(options.Keys);
        Assert.Equal(TenantId.Default, key.Tenant);
        Assert.Equal(KeyRole.Full, key.Role);
        Assert.Equal(KeyRole.Admin, options.RoleOf(key));
    }

    [Fact]
    public void With_tenants_a_full_key_is_full_in_its_tenant_and_admin_is_a_role_of_its_own()
    {
        var options = Read([.. TwoTenants, ("Server:Keys:0:Key", KeyA), ("Server:Keys:0:Role", "full"), ("Server:Keys:0:Tenant", "lab-a"),
            ("Server:Keys:1:Key", KeyB), ("Server:Keys:1:Role", "admin")]);

        Assert.Equal((KeyRole.Full, "lab-a"), (options.RoleOf(options.Keys[0]), options.Keys[0].Tenant.Value));
        Assert.Equal((KeyRole.Admin, "default"), (options.RoleOf(options.Keys[1]), options.Keys[1].Tenant.Value));
    }

    [Fact]
    public void A_key_of_a_tenant_that_is_not_listed_is_refused_naming_its_position_never_its_value()
    {
        var listed = Assert.Throws<PipelinesException>(() => Read([.. TwoTenants, ("Server:Keys:0:Key", KeyA), ("Server:Keys:0:Role", "read"), ("Server:Keys:0:Tenant", "lab-c")])).Message;
        var single = Assert.Throws<PipelinesException>(() => Read(("Server:Keys:0:Key", KeyA), ("Server:Keys:0:Role", "read"), ("Server:Keys:0:Tenant", "lab-a"))).Message;
        var invalid = Assert.Throws<PipelinesException>(() => Read(("Server:Keys:2:Key", KeyA), ("Server:Keys:2:Role", "read"), ("Server:Keys:2:Tenant", "Lab A"))).Message;

        Assert.Equal("Server:Keys:0:Tenant is 'lab-c', which has no Tenants:lab-c section: list the tenant, or give the key one that is listed", listed);
        Assert.StartsWith("Server:Keys:0:Tenant is 'lab-a', but this server has no Tenants section", single, StringComparison.Ordinal);
        Assert.StartsWith("Server:Keys:2:Tenant: 'Lab A' is not a tenant name", invalid, StringComparison.Ordinal);
        Assert.DoesNotContain(KeyA, listed + single + invalid, StringComparison.Ordinal);
    }

    [Fact]
    public void A_role_that_is_not_read_full_or_admin_is_refused()
    {
        Assert.Equal("Server:Keys:0:Role is 'owner'; write read, full or admin",
            Assert.Throws<PipelinesException>(() => Read(("Server:Keys:0:Key", KeyA), ("Server:Keys:0:Role", "owner"))).Message);
    }

    [Fact]
    public void A_callers_roles_are_cumulative_and_its_tenant_and_exact_role_are_claims()
    {
        var admin = KeyRing.Principal("op", KeyRole.Admin, TenantId.Default, "id", Access.Scheme);
        var full = KeyRing.Principal("alice", KeyRole.Full, TenantId.Parse("lab-a", "test"), "id", Access.Scheme);
        var read = KeyRing.Principal("viewer", KeyRole.Read, TenantId.Parse("lab-a", "test"), "id", Access.Scheme);

        Assert.True(admin.IsInRole("admin") && admin.IsInRole("full") && admin.IsInRole("read"));
        Assert.True(full.IsInRole("full") && full.IsInRole("read") && !full.IsInRole("admin"));
        Assert.True(read.IsInRole("read") && !read.IsInRole("full"));
        Assert.Equal("full", full.FindFirst(Access.KeyRoleClaim)?.Value);
        Assert.Equal(("op", "alice (lab-a)"), (Access.Who(admin), Access.Who(full)));
    }

    [Fact]
    public void A_tenant_key_reaches_its_tenant_whatever_it_names_and_an_admin_key_reaches_all_or_the_one_it_names()
    {
        var labA = TenantId.Parse("lab-a", "test");
        var full = KeyRing.Principal("alice", KeyRole.Full, labA, "id", Access.Scheme);
        var admin = KeyRing.Principal("op", KeyRole.Admin, TenantId.Default, "id", Access.Scheme);

        Assert.Equal(TenantScope.Of(labA), Access.ScopeOf(full, Request("?tenant=lab-b")));
        Assert.Equal(TenantScope.All, Access.ScopeOf(admin, Request("")));
        Assert.Equal(TenantScope.Of(TenantId.Parse("lab-b", "test")), Access.ScopeOf(admin, Request("?tenant=lab-b")));
        Assert.Equal(TenantScope.Of(labA), Access.ScopeOf(admin, Request("", header: "lab-a")));
        Assert.Throws<PipelinesException>(() => Access.ScopeOf(admin, Request("?tenant=Lab%20B")));
    }

    private static HttpRequest Request(string query, string? header = null)
    {
        var http = new DefaultHttpContext();
        http.Request.QueryString = new QueryString(query);
        if (header is not null)
        {
            http.Request.Headers[Access.TenantHeader] = header;
        }

        return http.Request;
    }
}
