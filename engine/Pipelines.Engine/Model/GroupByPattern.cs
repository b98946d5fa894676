using System.Globalization;
using System.Text.RegularExpressions;

namespace Pipelines.Model;

/// <summary>
/// <c>input.group_by</c> compiled once: the regex, with a match timeout, and its named captures.
/// The workflow's JSON holds only the text (<see cref="InputSpec.GroupBy"/>).
/// </summary>
public sealed class GroupByPattern
{
    /// <summary>How long one key may take to match: a pattern that backtracks without end must fail the plan, not hang it.</summary>
    public static readonly TimeSpan MatchTimeout = TimeSpan.FromSeconds(1);

    private GroupByPattern(string text, Regex regex)
    {
        Text = text;
        Regex = regex;
        Captures = regex.GetGroupNames().Where(n => !int.TryParse(n, CultureInfo.InvariantCulture, out _)).ToList();
    }

    public string Text { get; }

    public Regex Regex { get; }

    /// <summary>The named captures, in the pattern's order; the files of a unit share their values.</summary>
    public IReadOnlyList<string> Captures { get; }

    /// <summary>Compiles <paramref name="text"/>; throws <see cref="ArgumentException"/> when it is not a .NET regular expression.</summary>
    public static GroupByPattern Compile(string text) => Compile(text, MatchTimeout);

    /// <summary>For tests: the same pattern with a shorter timeout, or extra options that show which regex was used.</summary>
    internal static GroupByPattern Compile(string text, TimeSpan matchTimeout, RegexOptions extraOptions = RegexOptions.None) =>
        new(text, new Regex(text, RegexOptions.CultureInvariant | extraOptions, matchTimeout));

    /// <summary>
    /// The values of the named captures in <paramref name="key"/>, or null when the key does not match.
    /// A match that runs out of time is the workflow's fault: it throws <see cref="WorkflowInvalidException"/> naming the key.
    /// </summary>
    public Dictionary<string, string>? Match(string key)
    {
        Match m;
        try
        {
            m = Regex.Match(key);
        }
        catch (RegexMatchTimeoutException)
        {
            var limit = (int)Regex.MatchTimeout.TotalMilliseconds;
            throw new WorkflowInvalidException("the plan", [new WorkflowProblem(
                "input.group_by",
                $"'{Text}' took longer than {limit} ms to match the key '{key}'; simplify the pattern: nested repeats such as (a+)+ or (.*)*x can take exponential time",
                0,
                0)]);
        }

        return m.Success ? Captures.ToDictionary(n => n, n => m.Groups[n].Value, StringComparer.Ordinal) : null;
    }
}
