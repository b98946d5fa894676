using Pipelines.Canary;
using Pipelines.Gather;
using Pipelines.Planning;

namespace Pipelines.Tests.Canary;

[Unit]
public sealed class CanarySamplerTests
{
    private static IReadOnlyList<PlannedTask> Plan(int tasks, string image = "a") =>
        Enumerable.Range(0, tasks).Select(i => new PlannedTask(i, image + i, [new InputFile($"lane/{i:D5}.fastq", 10, "etag" + i)], new Dictionary<string, string>())).ToList();

    private static List<int> Sample(string workflow, string sample, IReadOnlyList<PlannedTask> plan)
    {
        var sampler = new CanarySampler(workflow, CanarySample.Parse(sample));
        foreach (var t in plan)
        {
            sampler.Observe(t);
        }

        return sampler.Sampled().Select(t => t.Index).ToList();
    }

    [Fact]
    public void A_share_takes_about_that_share_and_the_same_tasks_whatever_their_ids()
    {
        var a = Sample("wf", "5%", Plan(4000, "x"));
        var b = Sample("wf", "5%", Plan(4000, "y"));

        Assert.Equal(a, b);
        Assert.InRange(a.Count, 140, 260);
        Assert.Equal(a.Order(), a);
    }

    [Fact]
    public void A_number_takes_exactly_that_many_the_lowest_places()
    {
        var plan = Plan(500);
        var three = Sample("wf", "3", plan);

        Assert.Equal(3, three.Count);
        Assert.Subset(Sample("wf", "10", plan).ToHashSet(), three.ToHashSet());
        Assert.Equal(5, Sample("wf", "9", Plan(5)).Count);
    }

    [Fact]
    public void A_tiny_share_still_takes_one_task_and_all_of_it_takes_every_task()
    {
        Assert.Single(Sample("wf", "0.001%", Plan(20)));
        Assert.Equal(Enumerable.Range(0, 20), Sample("wf", "100%", Plan(20)));
    }

    [Theory]
    [InlineData("0%", "more than 0%")]
    [InlineData("150%", "at most 100%")]
    [InlineData("-3", "neither a percentage")]
    [InlineData("0", "at least 1 task")]
    [InlineData("five", "neither a percentage")]
    [InlineData("x%", "is not a share")]
    public void A_bad_sample_is_refused_with_what_to_write(string sample, string expected)
    {
        var e = Assert.Throws<CanaryRequestException>(() => CanaryRequest.Parse("s=i", sample, null));
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Flags_without_a_candidate_and_a_negative_tolerance_are_refused()
    {
        Assert.Null(CanaryRequest.Parse(null, null, null));
        Assert.Contains("--tolerance needs --candidate", Assert.Throws<CanaryRequestException>(() => CanaryRequest.Parse(null, null, 1e-3)).Message, StringComparison.Ordinal);
        Assert.Contains("0 or more", Assert.Throws<CanaryRequestException>(() => CanaryRequest.Parse("s=i", null, -1)).Message, StringComparison.Ordinal);
        Assert.Contains("STEP=IMAGE", Assert.Throws<CanaryRequestException>(() => CanaryRequest.Parse("=i", null, null)).Message, StringComparison.Ordinal);
        var ok = CanaryRequest.Parse("stats=algorithm://fastq-stats@2.0", null, null)!;
        Assert.Equal(("stats", "algorithm://fastq-stats@2.0", "5%", 1e-9), (ok.Step, ok.Image, ok.Sample.ToString(), ok.Tolerance));
    }

    [Theory]
    [InlineData("1.0", "1.0000000001", 1e-9, true)]
    [InlineData("1.0", "1.00001", 1e-9, false)]
    [InlineData("100", "1e2", 0, true)]
    [InlineData("0", "0.0", 1e-9, true)]
    [InlineData("0", "1e-300", 1e-9, false)]
    [InlineData("NaN", "NaN", 1e-9, true)]
    [InlineData("abc", "abd", 1, false)]
    [InlineData(null, null, 1e-9, true)]
    [InlineData(null, "0", 1e-9, false)]
    public void Cells_are_equal_as_text_or_as_numbers_within_the_relative_tolerance(string? a, string? b, double tolerance, bool equal) =>
        Assert.Equal(equal, CanaryCompare.CellsEqual(a, b, tolerance));
}
