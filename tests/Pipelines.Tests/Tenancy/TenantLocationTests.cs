using Microsoft.Extensions.Configuration;
using Pipelines.Model;
using Pipelines.Tenancy;
using Pipelines.Tests.Support;

namespace Pipelines.Tests.Tenancy;

/// <summary>
/// Where a tenant's workflow may read and write (TenantLocations.Check): every field, prefix
/// siblings, dot segments, local folders; the refusal names the field and this tenant's folders only.
/// </summary>
[Unit]
public sealed class TenantLocationTests
{
    private static readonly TenantId LabA = TenantId.Parse("lab-a", "test");

    private static readonly TenantOptions Options = TenantOptions.From(
        new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Tenants:lab-a:Output"] = "s3://data/lab-a/",
            ["Tenants:lab-a:Inputs:0"] = "s3://reference/genomes/",
            ["Tenants:lab-b:Output"] = "s3://data/lab-b/",
            ["Tenants:lab-c:Output"] = "/srv/lab-c/",
        }).Build(),
        path => path.StartsWith("/srv/", StringComparison.Ordinal));

    private static Workflow Flow(string input = "s3://data/lab-a/reads/", string output = "s3://data/lab-a/results/", string? trigger = null, string? sheet = null) =>
        WorkflowParser.Parse($$"""
            version: 1
            name: t
            input:
              uri: {{input}}
            {{(sheet is null ? "" : $"  samplesheet: {sheet}")}}
            steps:
              - name: stats
                image: tools/stats:1
                command: ["stats", "{inputs}"]
            output:
              uri: {{output}}
            {{(trigger is null ? "" : $"trigger:\n  uri: {trigger}")}}
            """, "api", baseDirectory: null);

    private static WorkflowProblem Refused(Workflow workflow, TenantId? tenant = null) =>
        Assert.Single(Assert.Throws<WorkflowInvalidException>(() => TenantLocations.Check(workflow, tenant ?? LabA, Options)).Problems);

    [Fact]
    public void A_workflow_inside_its_tenants_folders_passes()
    {
        TenantLocations.Check(Flow(trigger: "s3://data/lab-a/incoming/", sheet: "s3://reference/genomes/sheet.csv"), LabA, Options);
        TenantLocations.Check(Flow(input: "s3://reference/genomes/hg38/"), LabA, Options);
        TenantLocations.Check(Flow(input: "s3://data/lab-a", output: "s3://data/lab-a"), LabA, Options);
    }

    [Theory]
    [InlineData("s3://data/lab-b/reads/", null, null, "input.uri")]
    [InlineData("s3://data/lab-a/", "s3://data/lab-b/sheet.csv", null, "input.samplesheet")]
    [InlineData("s3://data/lab-a/", null, "s3://data/lab-b/in/", "trigger.uri")]
    [InlineData("s3://data/lab-ab/", null, null, "input.uri")]
    [InlineData("s3://data/", null, null, "input.uri")]
    public void Reading_outside_the_tenants_folders_is_refused_naming_the_field_and_only_its_own_folders(string input, string? sheet, string? trigger, string field)
    {
        var problem = Refused(Flow(input: input, sheet: sheet, trigger: trigger));

        Assert.Equal(field, problem.Path);
        Assert.EndsWith("is outside this tenant's locations; allowed are: s3://data/lab-a/, s3://reference/genomes/ (Tenants:lab-a)", problem.Message, StringComparison.Ordinal);
        var named = sheet ?? trigger ?? input;
        Assert.StartsWith($"'{named}' ", problem.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("lab-b", problem.Message[(named.Length + 2)..], StringComparison.Ordinal);
    }

    [Fact]
    public void Output_may_go_only_under_the_output_folder_not_under_an_input_folder()
    {
        var problem = Refused(Flow(output: "s3://reference/genomes/out/"));

        Assert.Equal("output.uri", problem.Path);
        Assert.Equal("'s3://reference/genomes/out/' is outside this tenant's output location; allowed is: s3://data/lab-a/ (Tenants:lab-a)", problem.Message);
    }

    [Fact]
    public void An_empty_segment_is_refused_rather_than_read_as_a_folder_of_the_tenant()
    {
        var problem = Refused(Flow(output: "s3://data/lab-a//x/"));

        Assert.Equal("output.uri", problem.Path);
        Assert.StartsWith("'s3://data/lab-a//x/' is not a location a tenant may use", problem.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("s3://data/lab-a/../lab-b/")]
    [InlineData("s3://data/lab-a/./x/")]
    [InlineData("s3:///x/")]
    public void Dot_segments_are_no_folder_even_where_the_workflow_parser_did_not_refuse_them_first(string uri)
    {
        Assert.Null(TenantLocations.Folder(uri));
    }

    [Fact]
    public void Local_folders_are_compared_after_dot_segments_are_resolved()
    {
        var c = TenantId.Parse("lab-c", "test");
        TenantLocations.Check(Flow(input: "/srv/lab-c/in/", output: "file:///srv/lab-c/out/"), c, Options);

        var problem = Refused(Flow(input: "/srv/lab-c/../lab-d/", output: "/srv/lab-c/out/"), c);
        Assert.Equal("input.uri", problem.Path);
    }

    [Fact]
    public void A_link_in_a_tenants_local_folder_to_another_tenants_folder_is_outside_its_folders()
    {
        using var temp = new TempFolder();
        Directory.CreateDirectory(temp.Combine("x", "in"));
        Directory.CreateDirectory(temp.Combine("y", "secret"));
        File.CreateSymbolicLink(temp.Combine("x", "in", "to-y"), temp.Combine("y"));
        var options = TenantOptions.From(
            new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
            {
                ["Tenants:lab-x:Output"] = temp.Combine("x"),
                ["Tenants:lab-y:Output"] = temp.Combine("y"),
            }).Build(),
            path => path.StartsWith(temp.Path, StringComparison.Ordinal));
        var x = TenantId.Parse("lab-x", "test");
        TenantLocations.Check(Flow(input: temp.Combine("x", "in") + "/", output: temp.Combine("x", "out") + "/"), x, options);

        void ThroughTheLink() => TenantLocations.Check(Flow(input: temp.Combine("x", "in", "to-y", "secret") + "/", output: temp.Combine("x", "out") + "/"), x, options);
        var problem = Assert.Single(Assert.Throws<WorkflowInvalidException>(ThroughTheLink).Problems);
        Assert.Equal("input.uri", problem.Path);
        Assert.DoesNotContain(temp.Combine("y"), problem.Message.Replace(temp.Combine("x", "in", "to-y"), "", StringComparison.Ordinal), StringComparison.Ordinal);
    }

    [Fact]
    public void The_default_tenant_without_folders_may_use_any_location_but_another_tenants()
    {
        TenantLocations.Check(Flow(input: "s3://shared/in/", output: "s3://shared/out/"), TenantId.Default, Options);

        var inside = Refused(Flow(input: "s3://data/lab-b/x/", output: "s3://shared/out/"), TenantId.Default);
        Assert.Equal("'s3://data/lab-b/x/' is inside or around a location reserved for another tenant of this server", inside.Message);
        Assert.Equal("output.uri", Refused(Flow(input: "s3://shared/in/", output: "s3://data/"), TenantId.Default).Path);
    }

    [Fact]
    public void A_server_without_tenants_checks_nothing_here()
    {
        TenantLocations.Check(Flow(input: "s3://anything/", output: "s3://else/"), TenantId.Default, TenantOptions.None);
    }
}
