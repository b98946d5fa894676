using Pipelines.Model;

namespace Pipelines.Tests.Planning;

[Unit]
public sealed class GlobFilterTests
{
    private static readonly GlobFilter Fastq = new(["**/*.fastq", "**/*.fastq.gz"], ["**/tmp/**"]);

    [Theory]
    [InlineData("a.fastq", true)]
    [InlineData("lane1/a.fastq.gz", true)]
    [InlineData("a.txt", false)]
    [InlineData("tmp/a.fastq", false)]
    [InlineData("lane1/tmp/x/a.fastq", false)]
    [InlineData("lane1/tmpx/a.fastq", true)]
    public void IsMatch_takes_what_an_include_matches_and_no_exclude_does(string key, bool matches)
    {
        Assert.Equal(matches, Fastq.IsMatch(key));
    }

    [Fact]
    public void IsMatch_with_no_include_takes_nothing()
    {
        Assert.False(new GlobFilter([], []).IsMatch("a.fastq"));
    }

    [Fact]
    public void IsMatch_exclude_wins_over_include()
    {
        Assert.False(new GlobFilter(["**"], ["**"]).IsMatch("a.fastq"));
    }

    [Fact]
    public void Constructor_refuses_an_unusable_glob()
    {
        Assert.Throws<ArgumentException>(() => new GlobFilter(["**"], ["/abs"]));
    }
}
