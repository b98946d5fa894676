using System.Text;
using Pipelines.Storage;
using Pipelines.Tests.EndToEnd;
using Pipelines.Tests.Support;

namespace Pipelines.Tests.Security;

/// <summary>
/// One embedded run whose tasks are hostile algorithms: each input is a shell script that a
/// real container (tests/images/hostile: busybox and a socket maker) runs, leaving links to host
/// files and folders, fifos, sockets, odd names, deep paths and too much in /out. The engine
/// runs as root on the host, so every case must end its task with a reason, read nothing
/// outside /out and touch nothing outside its scratch folder. The step takes the default reuse
/// (each case a request to a warm container of the run's step), as a user's workflow would;
/// <see cref="HostileOneShotRunFixture"/> runs the same cases with reuse: false.
/// </summary>
public class HostileRunFixture : IAsyncLifetime
{
    /// <summary>What the step says of reuse: nothing (the default: warm containers), or reuse: false (a container each).</summary>
    public virtual bool? Reuse => null;

    public TempFolder Temp { get; } = new();

    public string Secret { get; } = "hostile-secret-" + Guid.NewGuid().ToString("N");

    public string VictimFile => Temp.Combine("victim", "shadow");

    public string VictimDir => Temp.Combine("victim", "dir");

    public string Scratch => Temp.Combine("scratch");

    public CliRunner.Result Result { get; private set; } = null!;

    public long PeakRssBytes { get; private set; }

    public RunFolder Run { get; private set; } = null!;

    public IList<Pipelines.RunStore.ProvenanceRow> Provenance { get; private set; } = [];

    public static readonly Dictionary<string, string> Cases = new()
    {
        ["link-host-file"] = "ln -s {victim-file} /out/s.tsv",
        ["link-engine-environ"] = "ln -s /proc/self/environ /out/env.tsv",
        ["link-host-dir-not-kept"] = "ln -s {victim-dir} /out/d; echo ok > /out/r.tsv",
        ["link-host-dir-kept"] = "mkdir /out/keep; ln -s {victim-dir} /out/keep/d",
        ["link-dev-zero"] = "ln -s /dev/zero /out/z.tsv",
        ["link-up-the-tree"] = "ln -s ../../../../.. /out/up.tsv",
        ["fifo-kept"] = "mkfifo /out/p.tsv",
        ["fifo-not-kept"] = "mkfifo /out/p; echo ok > /out/r.tsv",
        ["socket-kept"] = "mksock /out/s.tsv",
        ["long-name"] = "echo ok > /out/" + new string('n', 251) + ".tsv",
        ["deep-path"] = "cd /out; mkdir keep; cd keep; for i in $(seq 200); do mkdir aaaaaaaaaaaaaaaaaaaaaaaa; cd aaaaaaaaaaaaaaaaaaaaaaaa; done; echo x > f",
        // Folders nested 30,000 deep (a shell's cd stops near PATH_MAX; mkdeep's chdir does not), kept
        // while the step runs: stopped for it, and emptied afterwards without recursion (deep enough to
        // overflow a thread's stack if walked by recursion) or a descriptor per level.
        ["nested-deep"] = "mkdeep /out 30000; sleep 30",
        ["too-many-bytes"] = "dd if=/dev/zero of=/out/big.tsv bs=1048576 count=64 2>/dev/null",
        ["sparse-file"] = "truncate -s 100G /out/sparse.tsv",

        // 64 MiB in a file removed while held open: no walk of /out sees it, the disk under /out holds it all the same.
        ["deleted-but-open"] = "exec 3>/out/hidden; rm /out/hidden; dd if=/dev/zero bs=1048576 count=64 >&3 2>/dev/null; sleep 60",
        // 12 MiB held open in a live file whose name ends as the kernel marks a deleted one: counted
        // once (by the walk), it is under the 20Mi quota; counted as deleted too it would be 24 MiB.
        ["named-deleted"] = "exec 3>\"/out/big (deleted)\"; dd if=/dev/zero bs=1048576 count=12 >&3 2>/dev/null; sleep 3; exec 3>&-; rm \"/out/big (deleted)\"; echo ok > /out/r.tsv",
        ["too-many-files"] = "for i in $(seq 1200); do : > /out/f$i; done",
        ["name-not-utf8"] = "touch \"/out/$(printf '\\377').tsv\"",
        ["name-with-newline"] = "touch \"/out/a\nb.tsv\"",
        // A kept name a local output folder takes for one of its own temporary files: stored, it would
        // be left out of every listing of the folder (a later run's input) without a word.
        ["name-temporary"] = "echo x > /out/a.pipelines-tmp-0123456789ab.tsv",
        ["well-behaved"] = "echo ok > /out/r.tsv",

        // Forks until the container's process limit, then ends: every fork goes with the request (a warm
        // container kills what a request left), and the container serves the next cases. The bomb starts
        // in one subshell, the script's only fork: started from the script itself, its pipeline's second
        // fork could meet the limit the first half already reached, and fail the script (exit 2) by a race.
        ["fork-bomb"] = "b() { b | b & }; (b); echo ok > /out/r.tsv",

        // 3 MB of output: the log kept of the attempt is its first and last 512 KiB, in a warm container too.
        ["print-lots"] = "echo FIRST; yes 0123456789abcdef | head -c 3000000; echo; echo LAST; echo ok > /out/r.tsv",

        // A process left running after the command ends: in a warm container it would write into the
        // next request's /out as soon as that request's inputs are at /in (one-shot: never, /in holds only its own).
        ["linger"] = "(while :; do for f in /in/*.sh; do [ \"$f\" = /in/linger.sh ] || echo late > /out/late.tsv; done; sleep 0.01; done) & echo ok > /out/r.tsv",

        // A kept output that a process left behind (its own session, orphaned, deaf to HUP, INT and
        // TERM) holds open and keeps appending to: a local output folder takes the file itself (a hard
        // link, LocalObjectStore.AdoptAsync), so a writer alive at stage-out would change the stored
        // bytes after they were hashed. Its file must hold what provenance says, long after the run.
        ["held-open"] = "echo made > /out/held.tsv; (setsid sh -c 'trap \"\" HUP INT TERM; exec 3>>/out/held.tsv; while :; do echo late >&3; done' &); until grep -q late /out/held.tsv; do sleep 0.01; done",
        // A kept output with a second name in /out (kept too) and one that is not kept, setuid and
        // setgid: neither may be taken as is (one inode under two keys, or a set-id file of the engine's).
        ["two-names"] = "echo x > /out/a.tsv; ln /out/a.tsv /out/b.tsv; ln /out/a.tsv /out/c; chmod 6755 /out/a.tsv",
        // A process left in its own session, deaf to HUP, INT and TERM, that writes nothing while its
        // command runs and, once another task's input is at /in, appends to that task's kept /out/r.tsv.
        ["late-writer"] = "(setsid sh -c 'trap \"\" HUP INT TERM; while :; do for f in /in/*; do [ \"$f\" = /in/late-writer.sh ] || [ ! -f /out/r.tsv ] || echo late >> /out/r.tsv; done; sleep 0.01; done' &); echo ok > /out/r.tsv",
        // A kept output with an extended attribute set from inside (busybox has no setfattr: the
        // image's xattr tool): it must be copied, never taken with the attribute as it is.
        ["xattr-kept"] = "echo x > /out/x.tsv; xattr set /out/x.tsv user.planted yes",
        // Fails after printing a NUL: the reason quotes what it printed, and a NUL cannot go into
        // PostgreSQL's text (the run store's error, the provenance row's jsonb) as it is.
        ["prints-nul"] = "printf 'before\\000after\\n'; exit 3",
    };

    /// <summary>The cases whose task succeeds: what they leave is kept, removed with a warning, or fine.</summary>
    public static readonly string[] Succeeding = ["link-host-dir-not-kept", "fifo-not-kept", "long-name", "well-behaved", "linger", "print-lots", "fork-bomb", "named-deleted", "held-open", "two-names", "late-writer", "xattr-kept"];

    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(VictimDir);
        await File.WriteAllTextAsync(VictimFile, Secret + "\n");
        await File.WriteAllTextAsync(Path.Combine(VictimDir, "keep-me.txt"), Secret + "\n");
        var input = Temp.Combine("cases");
        Directory.CreateDirectory(input);
        foreach (var (name, script) in Cases)
        {
            await File.WriteAllTextAsync(Path.Combine(input, name + ".sh"), script.Replace("{victim-file}", VictimFile, StringComparison.Ordinal).Replace("{victim-dir}", VictimDir, StringComparison.Ordinal) + "\n");
        }

        var workflow = Temp.Write("hostile.yaml", $"""
            version: 1
            name: hostile
            input:
              uri: {input}
            steps:
              - name: act
                image: pipelines-tests/hostile:1
                command: ["sh", "{"{input}"}"]
                outputs: ["*.tsv", "keep/**"]
                {(Reuse is { } r ? $"reuse: {(r ? "true" : "false")}" : "")}
                resources: {"{ disk: 20Mi, files: 1000, timeout: 2m }"}
            output:
              uri: {Temp.Combine("out")}
            """);
        var env = new Dictionary<string, string?>
        {
            ["PIPELINES_HOME"] = Temp.Combine("home"),
            ["PIPELINES_Worker__Scratch"] = Scratch,
            ["HOSTILE_TEST_SECRET"] = Secret,
        };
        (Result, PeakRssBytes) = await CliRunner.RunMeasuredAsync(Reuse == false ? ["run", workflow] : ["run", workflow, "-v"], env, TimeSpan.FromMinutes(4));
        var factory = new ObjectStoreFactory(new S3Settings(null, null, null, "us-east-1"));
        Run = new RunFolder(factory.Open(Temp.Combine("out")).Child(RunFolder.RunIdFrom(Result)));
        Provenance = await Run.ProvenanceAsync();
        await WriteReportAsync();
    }

    /// <summary>Each case's status, time and reason, kept as .build/test-results/hostile-cases.md for docs/security.md.</summary>
    public async Task WriteReportAsync()
    {
        var sb = new StringBuilder("| case | status | seconds | reason |\n| --- | --- | ---: | --- |\n");
        foreach (var name in Cases.Keys)
        {
            var row = Row(name);
            sb.Append(System.Globalization.CultureInfo.InvariantCulture, $"| {name} | {row.Status} | {(row.FinishedAt - row.StartedAt).TotalSeconds:0.00} | {row.Error?.Replace("|", "\\|", StringComparison.Ordinal)} |\n");
        }

        sb.Append(System.Globalization.CultureInfo.InvariantCulture, $"\nengine peak RSS: {PeakRssBytes / 1024 / 1024} MiB; scratch left: {Directory.EnumerateFileSystemEntries(Scratch).Count()} entries\n");
        var path = Path.Combine(TestEnvironment.RepoRoot, ".build", "test-results", Reuse == false ? "hostile-cases-one-shot.md" : "hostile-cases.md");
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        await File.WriteAllTextAsync(path, sb.ToString());
    }

    public Pipelines.RunStore.ProvenanceRow Row(string name) =>
        Provenance.Single(p => p.Inputs.Any(i => i.Key == name + ".sh") || p.Command.Contains("/in/" + name + ".sh"));

    public Task DisposeAsync()
    {
        Temp.Dispose();
        return Task.CompletedTask;
    }
}

/// <summary>The same hostile cases with reuse: false: a container of its own for each.</summary>
public sealed class HostileOneShotRunFixture : HostileRunFixture
{
    public override bool? Reuse => false;
}

[Integration]
public sealed class HostileOneShotOutputTests(HostileOneShotRunFixture f) : HostileOutputCases(f), IClassFixture<HostileOneShotRunFixture>;

/// <summary>The hostile cases as a user's workflow runs them: reuse by default, one warm container serving many of them in turn.</summary>
[Integration]
public sealed class HostileOutputTests(HostileRunFixture f) : HostileOutputCases(f), IClassFixture<HostileRunFixture>
{
    [Fact]
    public void The_cases_ran_as_requests_to_fewer_warm_containers_than_cases()
    {
        // The verbose log says each warm container's start; a case that replaced its container (a crash) would add one.
        var started = System.Text.RegularExpressions.Regex.Matches(Fixture.Result.Stdout + Fixture.Result.Stderr, "warm container [0-9a-f]+ of run:[^ ]+/step:act started").Count;
        Assert.Equal(HostileRunFixture.Cases.Count, Fixture.Provenance.Count);
        Assert.DoesNotContain(Fixture.Provenance, p => p.Error?.Contains("could not run", StringComparison.Ordinal) == true);
        Assert.InRange(started, 1, HostileRunFixture.Cases.Count / 2);
    }
}

/// <summary>What every hostile case must end with, whichever way the step's containers run.</summary>
public abstract class HostileOutputCases(HostileRunFixture f)
{
    protected HostileRunFixture Fixture => f;

    [Theory]
    [InlineData("link-host-file", "/out/s.tsv is a symbolic link, which is never followed; outputs must be regular files")]
    [InlineData("link-engine-environ", "/out/env.tsv is a symbolic link")]
    [InlineData("link-host-dir-kept", "/out/keep/d is a symbolic link")]
    [InlineData("link-dev-zero", "/out/z.tsv is a symbolic link")]
    [InlineData("link-up-the-tree", "/out/up.tsv is a symbolic link")]
    [InlineData("fifo-kept", "/out/p.tsv is a named pipe; outputs must be regular files")]
    [InlineData("socket-kept", "/out/s.tsv is a socket; outputs must be regular files")]
    [InlineData("deep-path", "an output path may be at most 768 bytes long")]
    [InlineData("nested-deep", "was stopped: it nested folders more than 384 deep in /out, deeper than any output path can be (768 bytes)")]
    [InlineData("too-many-bytes", "over its quota (resources.disk of step 'act' is 20Mi)")]
    [InlineData("sparse-file", "over its quota (resources.disk of step 'act' is 20Mi)")]
    [InlineData("deleted-but-open", "of it in files it deleted but holds open), over its quota (resources.disk of step 'act' is 20Mi)")]
    [InlineData("too-many-files", "more than 1000 files and folders")]
    [InlineData("name-not-utf8", "/out/\\xff.tsv: the name is not valid UTF-8")]
    [InlineData("name-with-newline", "/out/a\\nb.tsv: the name holds a control character")]
    [InlineData("name-temporary", "/out/a.pipelines-tmp-0123456789ab.tsv: the name holds '.pipelines-tmp-', which output folders keep for the engine's temporary files; output names may not")]
    public void A_hostile_output_fails_its_attempt_with_a_reason_naming_it(string name, string reason)
    {
        var row = f.Row(name);
        Assert.Equal("failed", row.Status);
        Assert.Contains(reason, row.Error, StringComparison.Ordinal);
        Assert.Empty(row.Outputs);
    }

    [Theory]
    [InlineData("link-host-dir-not-kept", "/out/d is a symbolic link, which is never followed and not a kept output: removed")]
    [InlineData("fifo-not-kept", "/out/p is a named pipe and not a kept output: removed")]
    public async Task An_odd_entry_that_is_not_kept_is_removed_with_a_warning_in_the_task_log(string name, string warning)
    {
        var row = f.Row(name);
        Assert.Equal("succeeded", row.Status);
        Assert.Equal(["r.tsv"], row.Outputs.Select(o => o.Key.Split('/')[^1]));
        var log = Encoding.UTF8.GetString(await f.Run.ReadAsync(row.Log!));
        Assert.Contains(warning, log, StringComparison.Ordinal);
    }

    [Fact]
    public void A_live_file_named_like_a_deleted_one_counts_once_against_the_quota()
    {
        var row = f.Row("named-deleted");
        Assert.True(row.Status == "succeeded", row.Error);
        Assert.Equal(["r.tsv"], row.Outputs.Select(o => o.Key.Split('/')[^1]));
    }

    [Fact]
    public void A_process_left_running_by_a_command_writes_into_no_other_tasks_output()
    {
        Assert.Equal(["r.tsv"], f.Row("linger").Outputs.Select(o => o.Key.Split('/')[^1]));
        Assert.DoesNotContain(f.Provenance.SelectMany(p => p.Outputs), o => o.Key.EndsWith("/late.tsv", StringComparison.Ordinal));
        Assert.Empty(Directory.EnumerateFiles(f.Temp.Combine("out"), "late.tsv", SearchOption.AllDirectories));
    }

    [Fact]
    public async Task A_step_printing_megabytes_keeps_the_first_and_last_half_MiB_in_its_log_and_says_it_cut()
    {
        var row = f.Row("print-lots");
        Assert.Equal("succeeded", row.Status);
        var log = Encoding.UTF8.GetString(await f.Run.ReadAsync(row.Log!));
        Assert.Contains("\nFIRST\n", log, StringComparison.Ordinal);
        Assert.Contains("\nLAST\n", log, StringComparison.Ordinal);
        Assert.Contains("[pipelines: log cut: the first and last 524288 of 3000012 bytes are kept]", log, StringComparison.Ordinal);
        Assert.InRange(log.Length, 1024 * 1024, (1024 * 1024) + 4096);
    }

    [Fact]
    public async Task A_kept_file_a_left_process_held_open_is_stored_with_the_bytes_its_hash_names_and_nothing_writes_it_after()
    {
        var row = f.Row("held-open");
        Assert.True(row.Status == "succeeded", row.Error);
        var kept = Assert.Single(row.Outputs);
        var stored = StoredPath(kept.Key);
        var bytes = await File.ReadAllBytesAsync(stored);

        // The writer ran (its lines are there) and was gone before stage-out: every case after it ran
        // since, and the file still holds exactly the bytes provenance hashed.
        Assert.StartsWith("made\nlate\n", Encoding.ASCII.GetString(bytes), StringComparison.Ordinal);
        Assert.Equal((kept.Size, kept.Sha256), (bytes.LongLength, Hashing.Sha256Hex(bytes)));
        AssertPlain(stored);
    }

    [Fact]
    public void A_kept_file_with_a_second_name_and_set_id_bits_is_stored_as_two_plain_files_of_the_engines()
    {
        var row = f.Row("two-names");
        Assert.True(row.Status == "succeeded", row.Error);
        Assert.Equal(["a.tsv", "b.tsv"], row.Outputs.Select(o => o.Key.Split('/')[^1]).Order(StringComparer.Ordinal));
        var stored = row.Outputs.Select(o => StoredPath(o.Key)).ToList();
        Assert.All(stored, AssertPlain);
        Assert.All(stored, p => Assert.Equal("x\n", File.ReadAllText(p)));
        Assert.True(UnixFile.TryStat(stored[0], followLinks: false, out var a, out _));
        Assert.True(UnixFile.TryStat(stored[1], followLinks: false, out var b, out _));
        Assert.NotEqual(a.Inode, b.Inode);
    }

    [Fact]
    public async Task A_detached_writer_left_by_a_command_adds_nothing_to_a_later_tasks_kept_output()
    {
        Assert.True(f.Row("late-writer").Status == "succeeded", f.Row("late-writer").Error);
        var kept = f.Provenance.Where(p => p.Status == "succeeded").SelectMany(p => p.Outputs).Where(o => o.Key.EndsWith("/r.tsv", StringComparison.Ordinal)).ToList();
        Assert.True(kept.Count >= 8, $"{kept.Count} r.tsv");
        foreach (var o in kept)
        {
            Assert.Equal("ok\n", await File.ReadAllTextAsync(StoredPath(o.Key)));
        }
    }

    [Fact]
    public void A_kept_file_with_an_extended_attribute_is_stored_as_a_plain_copy_without_it()
    {
        var row = f.Row("xattr-kept");
        Assert.True(row.Status == "succeeded", row.Error);
        var stored = StoredPath(Assert.Single(row.Outputs).Key);
        AssertPlain(stored);
        Assert.Equal("x\n", File.ReadAllText(stored));
        using var file = UnixFile.OpenRead(stored);
        Assert.False(UnixFile.HasExtendedAttributes(file), $"{stored} kept the attribute set in the container");
    }

    [Fact]
    public void A_step_that_prints_a_NUL_and_fails_is_told_with_the_NUL_shown()
    {
        var row = f.Row("prints-nul");
        Assert.Equal("failed", row.Status);
        Assert.Contains("exited with code 3: before\\0after", row.Error, StringComparison.Ordinal);
        Assert.DoesNotContain('\0', row.Error!);
    }

    /// <summary>Where a kept output's key is in the run's local output folder.</summary>
    private string StoredPath(string key) => Path.Combine(f.Temp.Combine("out"), RunFolder.RunIdFrom(f.Result), key);

    /// <summary>A stored output is a regular file of the engine's, mode 0644 (no set-id bit), with one name: nothing else reaches it.</summary>
    private static void AssertPlain(string path)
    {
        Assert.True(UnixFile.TryStat(path, followLinks: false, out var st, out _), path);
        Assert.Equal((UnixFileKind.Regular, 1u), (st.Kind, st.Links));
        Assert.Equal((UnixFileMode)0b110_100_100, File.GetUnixFileMode(path));
    }

    [Fact]
    public void A_name_of_255_bytes_the_limit_is_kept()
    {
        var row = f.Row("long-name");
        Assert.Equal("succeeded", row.Status);
        Assert.Equal(new string('n', 251) + ".tsv", row.Outputs.Single().Key.Split('/')[^1]);
    }

    [Fact]
    public async Task The_run_ends_and_says_how_many_tasks_failed()
    {
        Assert.Equal(1, f.Result.ExitCode);
        Assert.All(HostileRunFixture.Succeeding, name => Assert.True(f.Row(name).Status == "succeeded", $"{name}: {f.Row(name).Status}: {f.Row(name).Error}"));
        using var json = await f.Run.RunJsonAsync();
        Assert.Equal("failed", json.RootElement.GetProperty("status").GetString());
        Assert.Equal(HostileRunFixture.Cases.Count - HostileRunFixture.Succeeding.Length, json.RootElement.GetProperty("counts").GetProperty("failed").GetInt32());
        Assert.Equal(HostileRunFixture.Succeeding.Length, json.RootElement.GetProperty("counts").GetProperty("succeeded").GetInt32());
        Assert.DoesNotContain("   at ", f.Result.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task No_host_file_is_read_into_the_output_and_none_is_touched()
    {
        var secret = Encoding.UTF8.GetBytes(f.Secret);
        foreach (var file in Directory.EnumerateFiles(f.Temp.Combine("out"), "*", SearchOption.AllDirectories))
        {
            var bytes = await File.ReadAllBytesAsync(file);
            Assert.True(bytes.AsSpan().IndexOf(secret) < 0, $"{file} holds the host's secret");
        }

        Assert.Equal(f.Secret + "\n", await File.ReadAllTextAsync(f.VictimFile));
        Assert.Equal(f.Secret + "\n", await File.ReadAllTextAsync(Path.Combine(f.VictimDir, "keep-me.txt")));
    }

    [Fact]
    public void Every_scratch_folder_is_removed_and_the_engine_stays_small()
    {
        Assert.Empty(Directory.EnumerateFileSystemEntries(f.Scratch));

        // Links to /dev/zero and up the host's tree, and a 100G sparse file, are never read.
        Assert.InRange(f.PeakRssBytes, 1, 400L * 1024 * 1024);
    }
}
