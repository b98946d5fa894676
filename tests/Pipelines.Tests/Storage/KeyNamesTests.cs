using Pipelines.Storage;

namespace Pipelines.Tests.Storage;

/// <summary>The one rule for input keys, local and S3 alike: kept, or refused with the reason.</summary>
[Unit]
public sealed class KeyNamesTests
{
    [Theory]
    [InlineData("a.fastq")]
    [InlineData("lane 1/S1_R1.fastq.gz")]
    [InlineData("échantillon/読み.fastq")]
    [InlineData("emoji/🧬.fastq")]
    public void Problem_is_null_for_keys_the_engine_keeps(string key)
    {
        Assert.Null(KeyNames.Problem(key));
    }

    [Theory]
    [InlineData("new\nline.fastq")]
    [InlineData("Icon\r")]
    [InlineData("tab\there.fastq")]
    [InlineData("nul\0.fastq")]
    [InlineData("bell\u0007.fastq")]
    [InlineData("del\u007f.fastq")]
    [InlineData("\u001f")]
    public void Problem_refuses_control_characters(string key)
    {
        Assert.Equal("holds a control character", KeyNames.Problem(key));
    }

    [Theory]
    [InlineData("/abs.fastq", "has an empty segment (a leading '/', '//' or a trailing '/': not a plain path)")]
    [InlineData("a//b.fastq", "has an empty segment (a leading '/', '//' or a trailing '/': not a plain path)")]
    [InlineData("folder/", "has an empty segment (a leading '/', '//' or a trailing '/': not a plain path)")]
    [InlineData("../x.fastq", "escapes the prefix (a '.' or '..' segment: not a plain path)")]
    [InlineData("a/../../x.fastq", "escapes the prefix (a '.' or '..' segment: not a plain path)")]
    [InlineData("a/./b.fastq", "escapes the prefix (a '.' or '..' segment: not a plain path)")]
    [InlineData("a/..", "escapes the prefix (a '.' or '..' segment: not a plain path)")]
    [InlineData(".", "escapes the prefix (a '.' or '..' segment: not a plain path)")]
    [InlineData("", "is empty")]
    public void Problem_refuses_keys_that_are_not_plain_paths(string key, string problem)
    {
        // Staged at in/KEY by a root process: each of these names a path outside in/ or another file.
        Assert.Equal(problem, KeyNames.Problem(key));
    }

    [Theory]
    [InlineData("..hidden/x..y.fastq")]
    [InlineData(".x/.y.fastq")]
    [InlineData("a/...")]
    public void Problem_keeps_names_with_dots_that_are_plain_segments(string key)
    {
        Assert.Null(KeyNames.Problem(key));
    }

    [Theory]
    [InlineData("\uFFFD.fastq")]
    [InlineData("lone\uD800.fastq")]
    [InlineData("lone\uDC00.fastq")]
    public void Problem_refuses_names_that_were_not_valid_utf8(string key)
    {
        Assert.Equal("is not valid UTF-8 (shown with U+FFFD)", KeyNames.Problem(key));
    }

    [Fact]
    public void Problem_refuses_a_key_over_1024_utf8_bytes_and_keeps_one_of_exactly_1024()
    {
        // 'é' is two bytes in UTF-8: 512 of them are 1024 bytes in 512 characters.
        Assert.Null(KeyNames.Problem(new string('é', 512)));
        Assert.Equal("is 1026 bytes long in UTF-8; S3 allows at most 1024", KeyNames.Problem(new string('é', 513)));
        Assert.Null(KeyNames.Problem(new string('a', 1024)));
    }

    [Theory]
    [InlineData("new\nline.fastq", @"'new\nline.fastq'")]
    [InlineData("a\r\tb", @"'a\r\tb'")]
    [InlineData("bell\u0007\u007f", @"'bell\x07\x7f'")]
    [InlineData("it's\\", @"'it\'s\\'")]
    [InlineData("plain/é.fastq", "'plain/é.fastq'")]
    public void Escape_shows_control_characters_as_escapes_in_quotes(string key, string shown)
    {
        Assert.Equal(shown, KeyNames.Escape(key));
    }
}
