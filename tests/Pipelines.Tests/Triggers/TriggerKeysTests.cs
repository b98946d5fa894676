using Pipelines.Triggers;

namespace Pipelines.Tests.Triggers;

public sealed class TriggerKeysTests
{
    [Theory]
    [InlineData("a.fastq")]
    [InlineData("lane1/S001_R1.fastq")]
    [InlineData("with space/and+plus.fastq")]
    [InlineData("..hidden/x..y.fastq")]
    public void Ordinary_keys_are_accepted(string key) => Assert.Null(TriggerKeys.Problem(key));

    [Theory]
    [InlineData("../escape.fastq")]
    [InlineData("a/../../escape.fastq")]
    [InlineData("a/./b.fastq")]
    [InlineData("..")]
    public void Keys_with_dot_segments_escape_the_prefix(string key) =>
        Assert.Contains("escapes the prefix", TriggerKeys.Problem(key), StringComparison.Ordinal);

    [Theory]
    [InlineData("")]
    [InlineData("/abs.fastq")]
    [InlineData("a//b.fastq")]
    [InlineData("a\\..\\b.fastq")]
    [InlineData("folder/")]
    public void Empty_segments_and_backslashes_are_refused(string key) => Assert.NotNull(TriggerKeys.Problem(key));
}
