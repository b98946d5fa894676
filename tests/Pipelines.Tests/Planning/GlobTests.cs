using Pipelines.Model;

namespace Pipelines.Tests.Planning;

[Unit]
public sealed class GlobTests
{
    [Theory]
    [InlineData("**/*.fastq", "a.fastq", true)]
    [InlineData("**/*.fastq", "lane1/a.fastq", true)]
    [InlineData("**/*.fastq", "run/lane1/a.fastq", true)]
    [InlineData("**/*.fastq", "a.fastq.gz", false)]
    [InlineData("**/*.fastq", "afastq", false)]
    [InlineData("**", "a", true)]
    [InlineData("**", "a/b/c.txt", true)]
    [InlineData("a/**/b.txt", "a/b.txt", true)]
    [InlineData("a/**/b.txt", "a/x/y/b.txt", true)]
    [InlineData("a/**/b.txt", "ab.txt", false)]
    public void IsMatch_double_star_spans_any_number_of_folders(string pattern, string key, bool matches)
    {
        Assert.Equal(matches, Glob.Parse(pattern).IsMatch(key));
    }

    [Theory]
    [InlineData("*.fastq", "a.fastq", true)]
    [InlineData("*.fastq", "lane1/a.fastq", false)]
    [InlineData("lane1/*", "lane1/a.fastq", true)]
    [InlineData("lane1/*", "lane1/sub/a.fastq", false)]
    [InlineData("*", "", true)]
    public void IsMatch_star_stays_within_one_folder(string pattern, string key, bool matches)
    {
        Assert.Equal(matches, Glob.Parse(pattern).IsMatch(key));
    }

    [Theory]
    [InlineData("*.fastq", "new\nline.fastq", true)]
    [InlineData("*.fastq", "a.fastq\n", false)]
    [InlineData("**/*.fastq", "lane\n1/a.fastq", true)]
    [InlineData("**/*.fastq", "run/lane\n1/b\rc.fastq", true)]
    [InlineData("**", "a\nb/c\n", true)]
    [InlineData("a/**/b.txt", "a/x\ny/b.txt", true)]
    [InlineData("S?.txt", "S\n.txt", true)]
    [InlineData("S?.txt", "S\t.txt", true)]
    [InlineData("[!x].txt", "\n.txt", true)]
    [InlineData("*", "a\n/b", false)]
    public void IsMatch_wildcards_match_newlines_and_control_characters_but_never_a_slash(string pattern, string key, bool matches)
    {
        Assert.Equal(matches, Glob.Parse(pattern).IsMatch(key));
    }

    [Theory]
    [InlineData("S?.txt", "S1.txt", true)]
    [InlineData("S?.txt", "S10.txt", false)]
    [InlineData("S?.txt", "S.txt", false)]
    [InlineData("a?b", "a/b", false)]
    public void IsMatch_question_mark_is_one_character_but_not_a_slash(string pattern, string key, bool matches)
    {
        Assert.Equal(matches, Glob.Parse(pattern).IsMatch(key));
    }

    [Theory]
    [InlineData("[ab].txt", "a.txt", true)]
    [InlineData("[ab].txt", "b.txt", true)]
    [InlineData("[ab].txt", "c.txt", false)]
    [InlineData("S[0-9].txt", "S7.txt", true)]
    [InlineData("S[0-9].txt", "Sx.txt", false)]
    [InlineData("[!a].txt", "b.txt", true)]
    [InlineData("[!a].txt", "a.txt", false)]
    [InlineData("x[!a]y", "x/y", false)]
    [InlineData("x[^a]y", "x/y", false)]
    [InlineData("x[^a]y", "xby", true)]
    public void IsMatch_brackets_are_character_classes(string pattern, string key, bool matches)
    {
        Assert.Equal(matches, Glob.Parse(pattern).IsMatch(key));
    }

    [Theory]
    [InlineData("*.{fastq,fq}", "a.fastq", true)]
    [InlineData("*.{fastq,fq}", "a.fq", true)]
    [InlineData("*.{fastq,fq}", "a.fa", false)]
    [InlineData("*.{fastq,fq}", "a.{fastq,fq}", false)]
    [InlineData("**/*.fastq{,.gz}", "x/a.fastq.gz", true)]
    [InlineData("**/*.fastq{,.gz}", "x/a.fastq", true)]
    [InlineData("{a,{b,c}}.txt", "c.txt", true)]
    [InlineData("a,b.txt", "a,b.txt", true)]
    public void IsMatch_braces_are_alternatives(string pattern, string key, bool matches)
    {
        Assert.Equal(matches, Glob.Parse(pattern).IsMatch(key));
    }

    [Theory]
    [InlineData("tmp/**", "tmp/a", true)]
    [InlineData("tmp/**", "tmp/a/b/c", true)]
    [InlineData("tmp/**", "tmpx/a", false)]
    [InlineData("tmp/**", "x/tmp/a", false)]
    [InlineData("**/tmp/**", "tmp/a.fastq", true)]
    [InlineData("**/tmp/**", "run/tmp/x/a.fastq", true)]
    [InlineData("**/tmp/**", "run/tmpx/a.fastq", false)]
    [InlineData("**/tmp/**", "run/tmp.fastq", false)]
    public void IsMatch_trailing_double_star_is_everything_below_a_folder(string pattern, string key, bool matches)
    {
        Assert.Equal(matches, Glob.Parse(pattern).IsMatch(key));
    }

    [Theory]
    [InlineData("a+b(1).txt", "a+b(1).txt", true)]
    [InlineData("a.txt", "abtxt", false)]
    [InlineData("$x^", "$x^", true)]
    public void IsMatch_regex_characters_are_literal(string pattern, string key, bool matches)
    {
        Assert.Equal(matches, Glob.Parse(pattern).IsMatch(key));
    }

    [Fact]
    public void IsMatch_is_case_sensitive()
    {
        Assert.False(Glob.Parse("*.fastq").IsMatch("A.FASTQ"));
    }

    [Fact]
    public void Parse_keeps_the_pattern()
    {
        Assert.Equal("**/*.fastq", Glob.Parse("**/*.fastq").Pattern);
    }

    [Theory]
    [InlineData("**/*.fastq")]
    [InlineData("a/b[0-9]/{x,y}?.txt")]
    [InlineData("..data/x")]
    public void Check_accepts_usable_globs(string pattern)
    {
        Assert.Null(Glob.Check(pattern));
    }

    [Theory]
    [InlineData("", "is an empty glob")]
    [InlineData("/data/*.fastq", "'/data/*.fastq' starts with '/'; globs are relative, e.g. '**/*.fastq'")]
    [InlineData("../x", "'../x' has a '..' segment; globs cannot leave their folder")]
    [InlineData("a/../b", "'a/../b' has a '..' segment; globs cannot leave their folder")]
    [InlineData("a/..", "'a/..' has a '..' segment; globs cannot leave their folder")]
    [InlineData("[ab", "'[ab' has unbalanced brackets or braces")]
    [InlineData("ab]", "'ab]' has unbalanced brackets or braces")]
    [InlineData("[[a]]", "'[[a]]' has unbalanced brackets or braces")]
    [InlineData("{a,b", "'{a,b' has unbalanced brackets or braces")]
    [InlineData("a}", "'a}' has unbalanced brackets or braces")]
    public void Check_explains_unusable_globs(string pattern, string message)
    {
        Assert.Equal(message, Glob.Check(pattern));
    }

    [Fact]
    public void Parse_unusable_glob_throws_with_the_check_message()
    {
        var e = Assert.Throws<ArgumentException>(() => Glob.Parse("[ab"));

        Assert.StartsWith("'[ab' has unbalanced brackets or braces", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_compiles_a_pattern_once_and_the_cache_stays_bounded()
    {
        // A step's outputs are matched at every task's stage-out: the same pattern gives the same glob, not a new compiled regex.
        var pattern = "cache-" + Guid.NewGuid().ToString("N") + "/*.tsv";
        Assert.Same(Glob.Parse(pattern), Glob.Parse(pattern));

        // Ever new patterns (a server's many workflows) do not grow the cache past its bound, and still match.
        for (var i = 0; i < Glob.Cached * 3; i++)
        {
            Assert.True(Glob.Parse($"many-{i}/*.tsv").IsMatch($"many-{i}/a.tsv"));
        }

        Assert.InRange(Glob.CachedCount, 1, Glob.Cached);
        Assert.False(Glob.Parse(pattern).IsMatch("other/a.tsv"));
    }
}
