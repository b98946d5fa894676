using Pipelines.Tests.Support;

namespace Pipelines.Tests.Storage;

/// <summary>`pipelines s3 mb|cp|ls` against the real Swift server: a dataset in and back out, byte for byte.</summary>
[Integration]
public sealed class S3CommandTests : IDisposable
{
    private readonly TempFolder _temp = new();

    [Fact]
    public async Task A_folder_copied_into_a_new_bucket_lists_and_comes_back_byte_for_byte()
    {
        var bucket = "s3://" + TestEnvironment.NewName("cli-");
        var mb = await CliRunner.RunAsync(["s3", "mb", bucket]);
        Assert.True(mb.ExitCode == 0, mb.ToString());
        Assert.Equal(0, (await CliRunner.RunAsync(["s3", "mb", bucket])).ExitCode);

        var cp = await CliRunner.RunAsync(["s3", "cp", TestEnvironment.SampleFastq, bucket + "/run-42/"]);
        Assert.True(cp.ExitCode == 0, cp.ToString());
        var files = Directory.GetFiles(TestEnvironment.SampleFastq, "*", SearchOption.AllDirectories);
        Assert.Contains($"copied {files.Length} file(s)", cp.Stdout, StringComparison.Ordinal);

        var ls = await CliRunner.RunAsync(["s3", "ls", bucket + "/run-42/"]);
        Assert.Equal(0, ls.ExitCode);
        Assert.Contains($"{bucket}/run-42/lane1/S001_R1.fastq", ls.Stdout, StringComparison.Ordinal);
        Assert.Contains($"{files.Length} object(s)", ls.Stdout, StringComparison.Ordinal);

        var back = _temp.Combine("back");
        Assert.Equal(0, (await CliRunner.RunAsync(["s3", "cp", bucket + "/run-42/", back])).ExitCode);
        foreach (var f in files)
        {
            Assert.Equal(await File.ReadAllBytesAsync(f), await File.ReadAllBytesAsync(Path.Combine(back, Path.GetRelativePath(TestEnvironment.SampleFastq, f))));
        }
    }

    [Fact]
    public async Task A_missing_bucket_is_one_line_and_exit_1()
    {
        var ls = await CliRunner.RunAsync(["s3", "ls", "s3://" + TestEnvironment.NewName("none-") + "/x/"]);
        Assert.Equal(1, ls.ExitCode);
        Assert.Matches(@"^error: s3://none-[0-9a-f]+: the bucket does not exist\s*$", ls.Stderr);
    }

    public void Dispose() => _temp.Dispose();
}
