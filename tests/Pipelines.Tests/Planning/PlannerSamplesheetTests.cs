using Pipelines.Model;
using Pipelines.Planning;
using static Pipelines.Tests.Planning.PlanFixtures;

namespace Pipelines.Tests.Planning;

[Unit]
public sealed class PlannerSamplesheetTests
{
    private static readonly IReadOnlyList<InputFile> Listing = Files(
        "lane1/S1_R1.fastq", "lane1/S1_R2.fastq",
        "lane2/S1_R1.fastq", "lane2/S1_R2.fastq",
        "lane1/S2_R1.fastq", "lane1/S2_R2.fastq",
        "other.fastq");

    private static WorkflowProblem SheetProblem(string? csv) =>
        Assert.Single(Assert.Throws<WorkflowInvalidException>(() => Plan(SheetFlow(), Listing, csv)).Problems);

    [Fact]
    public void Planner_makes_a_unit_of_each_sheet_row_in_sheet_order()
    {
        var plan = Plan(SheetFlow(), Listing, """
            sample,fastq_1,fastq_2
            S2,lane1/S2_R1.fastq,lane1/S2_R2.fastq
            S1,lane1/S1_R1.fastq,lane1/S1_R2.fastq
            """);

        Assert.Equal([["lane1/S2_R1.fastq", "lane1/S2_R2.fastq"], ["lane1/S1_R1.fastq", "lane1/S1_R2.fastq"]], Keys(plan));
        Assert.Equal(["S2", "S1"], plan.Tasks.Select(t => t.Captures["sample"]));
        Assert.Equal((7, 4, 0), (plan.FilesListed, plan.FilesSelected, plan.FilesUngrouped));
    }

    [Fact]
    public void Planner_merges_rows_of_the_same_sample()
    {
        var plan = Plan(SheetFlow(), Listing, """
            sample,fastq_1,fastq_2
            S1,lane2/S1_R1.fastq,lane2/S1_R2.fastq
            S1,lane1/S1_R1.fastq,lane1/S1_R2.fastq
            """);

        var task = Assert.Single(plan.Tasks);
        Assert.Equal(["lane1/S1_R1.fastq", "lane1/S1_R2.fastq", "lane2/S1_R1.fastq", "lane2/S1_R2.fastq"], task.Inputs.Select(i => i.Key));
        Assert.Equal("S1", task.Captures["sample"]);
    }

    [Fact]
    public void Planner_reads_a_sheet_with_spaces_a_leading_slash_and_an_empty_cell()
    {
        var plan = Plan(SheetFlow(), Listing, """
            sample , fastq_1 , fastq_2
            S1 , /lane1/S1_R1.fastq ,
            """);

        Assert.Equal([["lane1/S1_R1.fastq"]], Keys(plan));
    }

    [Fact]
    public void Planner_reports_a_missing_file_with_its_line_and_column()
    {
        var p = SheetProblem("""
            sample,fastq_1,fastq_2
            S1,lane1/S1_R1.fastq,lane1/S1_R2.fastq
            S2,lane1/S2_R1.fastq,lane1/S2_R9.fastq
            """);

        Assert.Equal("input.samplesheet", p.Path);
        Assert.Equal($"{Sheet}, line 3, column fastq_2: 'lane1/S2_R9.fastq' is not under input.uri", p.Message);
    }

    [Fact]
    public void Planner_reports_every_bad_row_of_a_sheet_at_once()
    {
        var e = Assert.Throws<WorkflowInvalidException>(() => Plan(SheetFlow(), Listing, """
            sample,fastq_1,fastq_2
            S1,missing_1.fastq,lane1/S1_R2.fastq
            ,lane1/S2_R1.fastq,lane1/S2_R2.fastq
            S3,../secret.fastq,
            S4,,
            """));

        Assert.StartsWith($"{Sheet} is not a valid workflow (5 problems):", e.Message, StringComparison.Ordinal);
        Assert.Equal(
            [
                $"{Sheet}, line 2, column fastq_1: 'missing_1.fastq' is not under input.uri",
                $"{Sheet}, line 3: the 'sample' cell is empty",
                $"{Sheet}, line 4, column fastq_1: '../secret.fastq' leaves input.uri",
                $"{Sheet}, line 4: sample 'S3' names no file",
                $"{Sheet}, line 5: sample 'S4' names no file",
            ],
            e.Problems.Select(p => p.Message));
    }

    [Fact]
    public void Planner_refuses_a_sheet_without_a_sample_column()
    {
        var p = SheetProblem("name,fastq_1\nS1,lane1/S1_R1.fastq\n");

        Assert.Equal("input.samplesheet", p.Path);
        Assert.Equal($"{Sheet} has no 'sample' column (its columns: name, fastq_1)", p.Message);
    }

    [Fact]
    public void Planner_refuses_a_sheet_with_only_a_sample_column()
    {
        var p = SheetProblem("sample\nS1\n");

        Assert.Equal($"{Sheet} has no file column besides 'sample' (e.g. fastq_1, fastq_2)", p.Message);
    }

    [Theory]
    [InlineData("")]
    [InlineData(null)]
    public void Planner_refuses_an_empty_sheet(string? csv)
    {
        var p = SheetProblem(csv);

        Assert.Equal($"{Sheet} is empty; it needs a header row such as sample,fastq_1,fastq_2", p.Message);
    }

    [Fact]
    public void Planner_refuses_a_sheet_with_a_header_but_no_rows()
    {
        var p = SheetProblem("sample,fastq_1,fastq_2\n");

        Assert.Equal($"{Sheet} has a header but no rows", p.Message);
    }

    [Fact]
    public void Planner_refuses_a_row_with_a_different_number_of_cells()
    {
        var p = SheetProblem("sample,fastq_1,fastq_2\nS1,lane1/S1_R1.fastq\n");

        Assert.StartsWith($"{Sheet} line 2: not valid CSV: ", p.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Planner_refuses_two_samples_that_name_the_same_files_for_the_same_work()
    {
        var e = Assert.Throws<WorkflowInvalidException>(() => Plan(
            SheetFlow("""["stats", "{inputs}"]"""),
            Listing,
            "sample,fastq_1\nA,other.fastq\nB,other.fastq\n"));

        Assert.Equal(
            "tasks 0 and 1 would do the same work on the same inputs (other.fastq); list each file once",
            Assert.Single(e.Problems).Message);
    }

    [Fact]
    public void Planner_accepts_two_samples_of_the_same_file_when_the_sample_changes_the_command()
    {
        var plan = Plan(SheetFlow(), Listing, "sample,fastq_1\nA,other.fastq\nB,other.fastq\n");

        Assert.Equal(2, plan.Tasks.Count);
        Assert.NotEqual(plan.Tasks[0].TaskId, plan.Tasks[1].TaskId);
    }
}
