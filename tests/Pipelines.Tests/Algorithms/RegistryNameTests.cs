using Microsoft.Extensions.Configuration;
using Pipelines.Algorithms;
using Pipelines.Containers;

namespace Pipelines.Tests.Algorithms;

/// <summary>Which names are pulled from a registry, and whose credentials a pull gets.</summary>
[Unit]
public sealed class RegistryNameTests
{
    [Theory]
    [InlineData("registry.example.org/team/aligner:3", true)]
    [InlineData("127.0.0.1:5000/team/aligner:3", true)]
    [InlineData("localhost/aligner", true)]
    [InlineData("registry.local:5000/team/aligner@sha256:87ca631b93d7d7bbf6bef378e35044121c2f778c11948b14e14268357bf67da3", true)]
    [InlineData("pipelines-samples/fastq-stats:1", false)]
    [InlineData("busybox", false)]
    [InlineData("algorithm://fastq-stats@stable", false)]
    [InlineData("algorithm://fastq-stats@1.0", false)]
    public void A_name_names_a_registry_by_dockers_rule_and_an_algorithm_reference_never(string image, bool expected) =>
        Assert.Equal(expected, AlgorithmRuntime.HasRegistry(image));

    [Theory]
    [InlineData("busybox", "busybox", null, null, null)]
    [InlineData("pipelines-samples/fastq-stats:1", "pipelines-samples/fastq-stats", "1", null, null)]
    [InlineData("127.0.0.1:5000/team/aligner", "127.0.0.1:5000/team/aligner", null, null, "127.0.0.1:5000")]
    [InlineData("registry.local:5000/team/aligner:3@sha256:87ca", "registry.local:5000/team/aligner", "3", "sha256:87ca", "registry.local:5000")]
    [InlineData("localhost/aligner@sha256:87ca", "localhost/aligner", null, "sha256:87ca", "localhost")]
    [InlineData("algorithm://fastq-stats@stable", "algorithm://fastq-stats", null, "stable", null)]
    public void A_reference_is_taken_apart_by_dockers_rule(string image, string repository, string? tag, string? digest, string? registry) =>
        Assert.Equal(new ImageReference(repository, tag, digest, registry), ImageReference.Parse(image));

    [Fact]
    public void Credentials_are_found_by_host_with_a_port_through_Host_or_by_a_plain_host_key()
    {
        var config = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Algorithms:Registries:local:Host"] = "127.0.0.1:5000",
            ["Algorithms:Registries:local:Username"] = "ci",
            ["Algorithms:Registries:local:Password"] = "p1",
            ["Algorithms:Registries:registry.example.org:Username"] = "team",
            ["Algorithms:Registries:registry.example.org:Password"] = "p2",
        }).Build();
        var options = AlgorithmOptions.From(config);

        Assert.Equal("ci", options.Credentials("127.0.0.1:5000")?.Username);
        Assert.Equal("team", options.Credentials("REGISTRY.example.org")?.Username);
        Assert.Null(options.Credentials("local"));            // a label with a Host is not itself a host
        Assert.Null(options.Credentials("127.0.0.1:5001"));
        Assert.DoesNotContain("p1", options.Credentials("127.0.0.1:5000")!.ToString(), StringComparison.Ordinal);
    }
}
