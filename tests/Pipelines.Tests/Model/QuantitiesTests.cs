using Pipelines.Model;

namespace Pipelines.Tests.Model;

[Unit]
public sealed class QuantitiesTests
{
    [Theory]
    [InlineData("100", 100L)]
    [InlineData("100B", 100L)]
    [InlineData("512Mi", 512L * 1024 * 1024)]
    [InlineData("512MiB", 512L * 1024 * 1024)]
    [InlineData("1Gi", 1024L * 1024 * 1024)]
    [InlineData("1.5Gi", 1536L * 1024 * 1024)]
    [InlineData("1G", 1_000_000_000L)]
    [InlineData("1GB", 1_000_000_000L)]
    [InlineData("64k", 64_000L)]
    [InlineData("2Ki", 2048L)]
    [InlineData("1Ti", 1024L * 1024 * 1024 * 1024)]
    [InlineData(" 2 Gi ", 2L * 1024 * 1024 * 1024)]
    public void TryParseSize_reads_decimal_and_binary_units(string text, long bytes)
    {
        Assert.True(Quantities.TryParseSize(text, out var parsed));
        Assert.Equal(bytes, parsed);
    }

    [Theory]
    [InlineData("")]
    [InlineData("junk")]
    [InlineData("12XB")]
    [InlineData("Gi")]
    [InlineData("-1Gi")]
    [InlineData("1,5Gi")]
    [InlineData("512mi")]
    [InlineData("1e3")]
    [InlineData("99999999999Ti")]
    public void TryParseSize_refuses_what_is_not_a_size(string text)
    {
        Assert.False(Quantities.TryParseSize(text, out var parsed));
        Assert.Equal(0, parsed);
    }

    [Theory]
    [InlineData("30s", 30_000)]
    [InlineData("10m", 600_000)]
    [InlineData("1h30m", 5_400_000)]
    [InlineData("500ms", 500)]
    [InlineData("1m30s", 90_000)]
    [InlineData("1.5h", 5_400_000)]
    [InlineData("2d", 172_800_000)]
    [InlineData("0s", 0)]
    [InlineData(" 5m ", 300_000)]
    public void TryParseDuration_reads_units_and_their_sums(string text, long milliseconds)
    {
        Assert.True(Quantities.TryParseDuration(text, out var parsed));
        Assert.Equal(TimeSpan.FromMilliseconds(milliseconds), parsed);
    }

    [Theory]
    [InlineData("")]
    [InlineData("junk")]
    [InlineData("30")]
    [InlineData("10x")]
    [InlineData("1h 30m")]
    [InlineData("m10")]
    [InlineData("10m junk")]
    [InlineData("-5s")]
    [InlineData("99999999999d")]
    [InlineData("9999999999999999h")]
    public void TryParseDuration_refuses_what_is_not_a_duration(string text)
    {
        Assert.False(Quantities.TryParseDuration(text, out var parsed));
        Assert.Equal(TimeSpan.Zero, parsed);
    }

    [Theory]
    [InlineData(250, "250ms")]
    [InlineData(1_500, "1.5s")]
    [InlineData(90_000, "1m30s")]
    [InlineData(5_400_000, "1h30m")]
    public void FormatDuration_writes_a_short_human_form(long milliseconds, string text)
    {
        Assert.Equal(text, Quantities.FormatDuration(TimeSpan.FromMilliseconds(milliseconds)));
    }

    [Theory]
    [InlineData(300, "300 bytes")]
    [InlineData(1, "1 byte")]
    [InlineData(65_536, "64Ki")]
    [InlineData(1_572_864, "1.5Mi")]
    [InlineData(65_537, "64Ki (65,537 bytes)")]
    [InlineData(1_073_741_825, "1Gi (1,073,741,825 bytes)")]
    public void FormatSize_never_writes_two_different_sizes_the_same(long bytes, string text)
    {
        Assert.Equal(text, Quantities.FormatSize(bytes));
    }
}
