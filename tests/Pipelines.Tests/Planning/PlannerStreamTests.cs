using Pipelines.Planning;
using static Pipelines.Tests.Planning.PlanFixtures;

namespace Pipelines.Tests.Planning;

[Unit]
public sealed class PlannerStreamTests
{
    [Theory]
    [InlineData("")]
    [InlineData("  batch: 3")]
    [InlineData("  batch: 2\n  include: [\"**/*.fastq\"]\n  exclude: [\"tmp/**\"]")]
    public async Task PlanStream_makes_the_same_tasks_as_Plan(string input)
    {
        var flow = Flow(input);
        var listing = Files("a/1.fastq", "a/2.fastq", "a/3.txt", "b/4.fastq", "c.fastq", "tmp/5.fastq", "z/6.fastq");
        var whole = Planner.Plan(flow, listing, null, Digests);
        var counter = new PlanCounter();

        var streamed = await Collect(Planner.PlanStreamAsync(flow, Async(listing), Digests, counter, CancellationToken.None));

        Assert.Equal(whole.Tasks.Select(t => (t.Index, t.TaskId, string.Join(",", t.Inputs.Select(i => i.Key)))), streamed.Select(t => (t.Index, t.TaskId, string.Join(",", t.Inputs.Select(i => i.Key)))));
        Assert.Equal(whole.FilesListed, counter.Listed);
        Assert.Equal(whole.FilesSelected, counter.Selected);
        Assert.Equal(whole.Tasks.Count, counter.Tasks);
    }

    [Fact]
    public async Task PlanStream_refuses_a_listing_out_of_key_order()
    {
        var e = await Assert.ThrowsAsync<InvalidOperationException>(() =>
            Collect(Planner.PlanStreamAsync(Flow(), Async(Files("b", "a")), Digests, new PlanCounter(), CancellationToken.None)));
        Assert.Contains("'a' after 'b'", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Only_plans_without_group_by_or_a_samplesheet_can_stream()
    {
        Assert.True(Planner.CanStream(Flow("  batch: 5")));
        Assert.False(Planner.CanStream(Flow("  group_by: '(?<s>[^/]+)_R[12]'")));
        Assert.False(Planner.CanStream(SheetFlow()));
    }

    [Fact]
    public async Task PlanStream_holds_one_batch_and_yields_as_the_listing_streams()
    {
        var flow = Flow("  batch: 2");
        var pulled = 0;
        async IAsyncEnumerable<InputFile> Listing()
        {
            for (var i = 0; i < 1_000_000; i++)
            {
                pulled++;
                yield return File($"f{i:D7}");
                await Task.CompletedTask;
            }
        }

        await foreach (var task in Planner.PlanStreamAsync(flow, Listing(), Digests, new PlanCounter(), CancellationToken.None))
        {
            // The first task comes after two files, not after the whole listing.
            Assert.Equal(0, task.Index);
            Assert.Equal(2, pulled);
            break;
        }
    }

    private static async IAsyncEnumerable<InputFile> Async(IEnumerable<InputFile> files)
    {
        foreach (var f in files)
        {
            yield return f;
        }

        await Task.CompletedTask;
    }

    private static async Task<List<PlannedTask>> Collect(IAsyncEnumerable<PlannedTask> tasks)
    {
        var list = new List<PlannedTask>();
        await foreach (var t in tasks)
        {
            list.Add(t);
        }

        return list;
    }
}
