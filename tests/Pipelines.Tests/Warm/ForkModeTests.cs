using Docker.DotNet.Models;
using Pipelines.Containers;
using Pipelines.Containers.Warm;

namespace Pipelines.Tests.Warm;

/// <summary>Fork mode on the real Docker engine: the engine's helper runs one command per request in a warm container.</summary>
[Integration]
public sealed class ForkModeTests : IAsyncLifetime
{
    private static readonly TimeSpan Minute = TimeSpan.FromMinutes(1);
    private static readonly Dictionary<string, string> NoEnv = [];
    private readonly WarmTestContext _context = new();

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync() => await _context.DisposeAsync();

    [Fact]
    public async Task One_warm_container_serves_many_requests_each_with_its_own_files()
    {
        var pool = _context.Pool();
        var spec = await _context.ForkSpecAsync();
        var containers = new HashSet<string>();
        for (var i = 0; i < 25; i++)
        {
            await using var lease = await pool.AcquireAsync(spec, CancellationToken.None);
            containers.Add(lease.ContainerId);
            await File.WriteAllTextAsync(Path.Combine(lease.InDir, $"request-{i}.txt"), $"hello world {i}\nsecond line\n");
            var result = await lease.RunAsync(["wordcount"], NoEnv, Minute, CancellationToken.None);
            Assert.True(result.Succeeded, result.Log);
            var table = await File.ReadAllTextAsync(Path.Combine(lease.OutDir, "counts.tsv"));
            Assert.Equal($"file\tlines\twords\tbytes\nrequest-{i}.txt\t2\t5\t{$"hello world {i}\nsecond line\n".Length}\n", table);
        }

        Assert.Single(containers);
        var stats = Assert.Single(pool.Stats());
        Assert.Equal(1, stats.Started);
        Assert.Equal(0, stats.Replaced);
        Assert.Equal(1, stats.Warm);
        Assert.Equal(0, stats.Busy);
    }

    [Fact]
    public async Task Each_request_is_measured_on_its_own_from_its_containers_cgroup()
    {
        var pool = _context.Pool();
        var spec = await _context.ForkSpecAsync();
        ContainerResult burn, quiet;
        string first;
        await using (var lease = await pool.AcquireAsync(spec, CancellationToken.None))
        {
            first = lease.ContainerId;
            burn = await lease.RunAsync(["sh", "-c", Tests.Containers.DockerRuntimeTests.BurnScript], NoEnv, Minute, CancellationToken.None);
        }

        await using (var lease = await pool.AcquireAsync(spec, CancellationToken.None))
        {
            Assert.Equal(first, lease.ContainerId);
            quiet = await lease.RunAsync(["sh", "-c", "exit 0"], NoEnv, Minute, CancellationToken.None);
        }

        Assert.True(burn.Succeeded, burn.Log);
        var burned = Tests.Containers.DockerRuntimeTests.Burned(burn.Log);
        Assert.InRange(burn.Resources.CpuSeconds!.Value, burned * 0.8, burned + 2);
        Assert.InRange(burn.Resources.PeakMemoryBytes!.Value, Tests.Containers.DockerRuntimeTests.FillBytes, 256L * 1024 * 1024);
        Assert.Equal(burn.Duration.TotalSeconds, burn.Resources.WallSeconds!.Value, 6);
        Tests.Containers.DockerRuntimeTests.AssertDiskBytesOrANote(burn);

        // The second request of the same container counts its own use, not the container's so far.
        Assert.True(quiet.Succeeded, quiet.Log);
        Assert.InRange(quiet.Resources.CpuSeconds!.Value, 0, burned / 2);
        if (Pipelines.Containers.Cgroups.CgroupMounts.Machine is Pipelines.Containers.Cgroups.CgroupV2)
        {
            // v2 starts memory.peak again for one open file only: not measured, and said.
            Assert.Null(quiet.Resources.PeakMemoryBytes);
            Assert.Contains(quiet.ResourceNotes, n => n.StartsWith("peak memory not measured", StringComparison.Ordinal));
        }
        else
        {
            Assert.InRange(quiet.Resources.PeakMemoryBytes!.Value, 1, Tests.Containers.DockerRuntimeTests.FillBytes - 1);
        }
    }

    [Fact]
    public async Task A_request_sees_what_a_one_shot_container_would_and_nothing_of_the_one_before()
    {
        var pool = _context.Pool();
        var spec = await _context.ForkSpecAsync();
        string first;
        await using (var lease = await pool.AcquireAsync(spec, CancellationToken.None))
        {
            first = lease.ContainerId;
            await File.WriteAllTextAsync(Path.Combine(lease.InDir, "a.txt"), "a");
            Directory.CreateDirectory(Path.Combine(lease.StepsDir, "earlier"));
            await File.WriteAllTextAsync(Path.Combine(lease.StepsDir, "earlier", "kept.txt"), "kept");

            // Everything a request could leave for the next one: files in /tmp, /out (one
            // unreadable folder), /dev/shm and the control folder, SysV shared memory, and
            // children that try to outlive it (backgrounded, in a new session, double-forked).
            var script = string.Join("\n", [
                "echo left > /tmp/left; mkdir -p /tmp/deep/er && echo x > /tmp/deep/er/x",
                "mkdir /out/locked && echo y > /out/locked/y && chmod 000 /out/locked; echo z > /out/z",
                "echo shm > /dev/shm/left; echo ctl > /run/pipelines/left",
                "ipcmk -M 4096 >/dev/null",
                "sleep 1000 & setsid sleep 1001 & (sleep 1002 &) ; nohup sleep 1003 >/dev/null 2>&1 &",
                "cat /steps/earlier/kept.txt; echo; ls /in",
            ]);
            var result = await lease.RunAsync(["sh", "-c", script], NoEnv, Minute, CancellationToken.None);
            Assert.True(result.Succeeded, result.Log);
            Assert.Contains("kept", result.Log, StringComparison.Ordinal);
            Assert.Contains("a.txt", result.Log, StringComparison.Ordinal);
        }

        await using (var lease = await pool.AcquireAsync(spec, CancellationToken.None))
        {
            Assert.Equal(first, lease.ContainerId);
            Assert.Empty(Directory.EnumerateFileSystemEntries(lease.InDir));
            Assert.Empty(Directory.EnumerateFileSystemEntries(lease.OutDir));
            Assert.Empty(Directory.EnumerateFileSystemEntries(lease.StepsDir));
            var script = "echo tmp=$(ls -A /tmp | wc -l) out=$(ls -A /out | wc -l) in=$(ls -A /in | wc -l) steps=$(ls -A /steps | wc -l) shm=$(ls -A /dev/shm | wc -l) ctl=$(ls -A /run/pipelines | wc -l) ipc=$(ipcs -m | grep -c '^0x'); echo pwd=$(pwd); ps -o pid,args";
            var result = await lease.RunAsync(["sh", "-c", script], NoEnv, Minute, CancellationToken.None);
            Assert.True(result.Succeeded, result.Log);
            Assert.Contains("tmp=0 out=0 in=0 steps=0 shm=0 ctl=0 ipc=0", result.Log, StringComparison.Ordinal);
            Assert.Contains("pwd=/out", result.Log, StringComparison.Ordinal);
            Assert.DoesNotContain("sleep", result.Log, StringComparison.Ordinal);

            // The helper (pid 1) and this request's shell or its ps: nothing else is alive.
            var processes = result.Log.Split('\n').SkipWhile(l => !l.Contains("PID", StringComparison.Ordinal)).Skip(1).Where(l => l.Trim().Length > 0).ToList();
            Assert.Contains(processes, p => p.Trim().StartsWith("1 /.pipelines/warm", StringComparison.Ordinal));
            Assert.All(processes, p => Assert.True(p.Contains("/.pipelines/warm", StringComparison.Ordinal) || p.Contains("ps", StringComparison.Ordinal), string.Join("\n", processes)));
        }
    }

    [Fact]
    public async Task Folders_nested_deeper_than_the_helpers_descriptors_in_tmp_are_gone_for_the_next_request()
    {
        // The helper empties /tmp as the container's user: 15,000 folders, one in the other, are
        // more than its descriptors (20,000) allow holding two a level, and more than its stack
        // allows by recursion: it left the folders below the ~10,000th level (and so every level
        // above) to the next request. What it cannot empty it says, and the container is replaced.
        // Beside it, folders made unreadable and unwritable are emptied too.
        var pool = _context.Pool();
        var spec = await HostileSpecAsync();
        await using (var lease = await pool.AcquireAsync(spec, CancellationToken.None))
        {
            var deep = await lease.RunAsync(["sh", "-c", "echo caller-one > /tmp/top && mkdir -p /tmp/w/a /tmp/w/b/c && echo x > /tmp/w/b/c/f && chmod 000 /tmp/w/b/c /tmp/w/b && chmod 500 /tmp/w && mkdeep /tmp 15000"], NoEnv, Minute, CancellationToken.None);
            Assert.True(deep.Succeeded, deep.Log);
        }

        await using (var lease = await pool.AcquireAsync(spec, CancellationToken.None))
        {
            var next = await lease.RunAsync(["sh", "-c", "echo tmp=$(ls -A /tmp | wc -l)"], NoEnv, Minute, CancellationToken.None);
            Assert.Equal((0, "tmp=0\n"), (next.ExitCode, next.Log));
        }

        // Emptied by the helper itself, without recursion: the container serves on.
        Assert.Equal(0, Assert.Single(pool.Stats()).Replaced);
    }

    [Fact]
    public async Task What_a_request_sets_on_its_out_and_control_folders_themselves_is_gone_for_the_next_request()
    {
        // /out and /run/pipelines are the container user's own folders, kept for its life and only
        // emptied between requests: their extended attributes (an ACL among them), inode flags and times would
        // carry one caller's data to the next caller of the same function.
        var pool = _context.Pool();
        var spec = await HostileSpecAsync();
        string first;
        await using (var lease = await pool.AcquireAsync(spec, CancellationToken.None))
        {
            first = lease.ContainerId;
            var set = await lease.RunAsync(
                ["sh", "-c", "for d in /out /run/pipelines; do xattr set $d user.left caller-one && xattr flags $d 100c8 >/dev/null && touch -d '2001-02-03 04:05:06' $d || exit 1; done"],
                NoEnv,
                Minute,
                CancellationToken.None);
            Assert.True(set.Succeeded, set.Log);
        }

        await using (var lease = await pool.AcquireAsync(spec, CancellationToken.None))
        {
            Assert.Equal(first, lease.ContainerId);
            var next = await lease.RunAsync(
                ["sh", "-c", "for d in /out /run/pipelines; do echo \"$d $(xattr get $d user.left) $(stat -c %Y $d) flags=$(xattr flags $d)\"; done"],
                NoEnv,
                Minute,
                CancellationToken.None);
            Assert.Equal(0, next.ExitCode);
            Assert.DoesNotContain("caller-one", next.Log, StringComparison.Ordinal);
            Assert.DoesNotContain("981173106", next.Log, StringComparison.Ordinal);

            // sync, nodump, noatime and dirsync (0x100c8), which the owner may set: back as the engine made them.
            var flags = System.Text.RegularExpressions.Regex.Matches(next.Log, "flags=([0-9a-f]+)").Select(m => Convert.ToInt32(m.Groups[1].Value, 16)).ToList();
            Assert.Equal(2, flags.Count);
            Assert.All(flags, f => Assert.Equal(0, f & 0x100c8));
        }

        Assert.Equal(0, Assert.Single(pool.Stats()).Replaced);
    }

    /// <summary>A fork-mode spec of tests/images/hostile (busybox, mkdeep, xattr), with the helper's usual resources.</summary>
    private async Task<WarmSpec> HostileSpecAsync() =>
        await _context.ForkSpecAsync() with { ImageId = await _context.Runtime.Images.ResolveImageAsync("pipelines-tests/hostile:1", CancellationToken.None) };

    [Fact]
    public async Task A_command_past_its_timeout_is_killed_with_its_children_and_the_container_serves_on()
    {
        var pool = _context.Pool();
        var spec = await _context.ForkSpecAsync();
        string id;
        await using (var lease = await pool.AcquireAsync(spec, CancellationToken.None))
        {
            id = lease.ContainerId;
            var result = await lease.RunAsync(["sh", "-c", "echo started; sleep 100 & sleep 60"], NoEnv, TimeSpan.FromMilliseconds(700), CancellationToken.None);
            Assert.True(result.TimedOut);
            Assert.False(result.Succeeded);
            Assert.Equal("timed out and was killed", result.Error);
            Assert.Contains("started", result.Log, StringComparison.Ordinal);
            Assert.True(result.Duration < TimeSpan.FromSeconds(10), result.Duration.ToString());
        }

        await using (var lease = await pool.AcquireAsync(spec, CancellationToken.None))
        {
            Assert.Equal(id, lease.ContainerId);
            var result = await lease.RunAsync(["sh", "-c", "ps -o args | grep -c 'slee[p] 100' || true"], NoEnv, Minute, CancellationToken.None);
            Assert.Equal("0\n", result.Log);
        }

        Assert.Equal(0, Assert.Single(pool.Stats()).Replaced);
    }

    [Fact]
    public async Task A_fork_bomb_is_held_by_the_pids_limit_and_gone_for_the_next_request()
    {
        var pool = _context.Pool();
        var spec = await _context.ForkSpecAsync() with { Resources = new Pipelines.Model.Resources(1, 256L * 1024 * 1024, Minute, 64) };
        await using var lease = await pool.AcquireAsync(spec, CancellationToken.None);
        // The bomb runs in a subshell, so that the shell that hits the limit is not the one that
        // then sleeps until the timeout; 5 s for it to reach the limit on a loaded machine.
        var bomb = await lease.RunAsync(["sh", "-c", "(b() { b | b & }; b); exec sleep 30"], NoEnv, TimeSpan.FromSeconds(5), CancellationToken.None);
        Assert.True(bomb.TimedOut, bomb.Log);
        Assert.Contains("can't fork", bomb.Log, StringComparison.Ordinal);
        var next = await lease.RunAsync(["sh", "-c", "ps -o pid | wc -l"], NoEnv, Minute, CancellationToken.None);
        Assert.True(next.Succeeded, next.Log);

        // The header, the helper, this shell, its ps and wc (some shells fork one more for the pipe).
        Assert.InRange(int.Parse(next.Log.Trim(), System.Globalization.CultureInfo.InvariantCulture), 3, 5);
        Assert.Equal(0, Assert.Single(pool.Stats()).Replaced);
    }

    [Fact]
    public async Task A_failing_or_crashing_command_is_its_request_failure_not_the_containers()
    {
        var pool = _context.Pool();
        var spec = await _context.ForkSpecAsync();
        await using var lease = await pool.AcquireAsync(spec, CancellationToken.None);
        var failed = await lease.RunAsync(["sh", "-c", "echo broken input >&2; exit 7"], NoEnv, Minute, CancellationToken.None);
        Assert.Equal(7, failed.ExitCode);
        Assert.Equal("exited with code 7", failed.Error);
        Assert.Contains("broken input", failed.Log, StringComparison.Ordinal);

        var crashed = await lease.RunAsync(["sh", "-c", "kill -SEGV $$"], NoEnv, Minute, CancellationToken.None);
        Assert.Equal(128 + 11, crashed.ExitCode);

        var missing = await lease.RunAsync(["no-such-program"], NoEnv, Minute, CancellationToken.None);
        Assert.Equal(127, missing.ExitCode);
        Assert.Contains("cannot run 'no-such-program'", missing.Log, StringComparison.Ordinal);

        var env = await lease.RunAsync(["sh", "-c", "echo \"$GREETING\"; echo \"$PATH\""], new Dictionary<string, string> { ["GREETING"] = "hi there" }, Minute, CancellationToken.None);
        Assert.Equal("hi there\n/bin\n", env.Log);
        Assert.Equal(0, Assert.Single(pool.Stats()).Replaced);
    }

    [Fact]
    public async Task A_command_over_the_memory_limit_is_reported_as_killed_for_memory()
    {
        var pool = _context.Pool();
        var spec = await _context.ForkSpecAsync() with { Resources = new Pipelines.Model.Resources(1, 32L * 1024 * 1024, Minute, 64) };
        await using var lease = await pool.AcquireAsync(spec, CancellationToken.None);
        var result = await lease.RunAsync(["awk", "BEGIN { s = \"xxxxxxxxxxxxxxxx\"; while (1) s = s s }"], NoEnv, Minute, CancellationToken.None);
        Assert.True(result.OomKilled, $"exit {result.ExitCode}: {result.Log}");
        Assert.Equal("was killed for exceeding its memory limit", result.Error);
    }

    [Fact]
    public async Task A_request_that_leaves_stopped_orphaned_and_zombie_processes_and_signals_the_helper_ends_whole()
    {
        // The vfork helper ends a request by kill(-1, SIGKILL) and reaps until it has no child:
        // a stopped process, an orphan in its own session, a zombie its parent never waited for,
        // and STOP, TERM, HUP and CHLD sent to PID 1 (which has no handler for them: dropped).
        var pool = _context.Pool();
        var spec = await _context.ForkSpecAsync();
        await using var lease = await pool.AcquireAsync(spec, CancellationToken.None);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var left = await lease.RunAsync(
            ["sh", "-c", "sleep 1000 & kill -STOP $!; (setsid sleep 1001 &); sh -c 'sleep 1002 & exec true'; sh -c 'true & exec sleep 1003' &  kill -STOP 1; kill -TERM 1; kill -HUP 1; kill -CHLD 1; echo left"],
            NoEnv,
            Minute,
            CancellationToken.None);
        Assert.Equal((0, "left\n"), (left.ExitCode, left.Log));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(20), clock.Elapsed.ToString());

        // The same helper serves the next request, and nothing of the last one is alive.
        var next = await lease.RunAsync(["sh", "-c", "for p in /proc/[0-9]*; do echo \"${p#/proc/} $(cat $p/cmdline | tr '\\0' ' ')\"; done"], NoEnv, Minute, CancellationToken.None);
        Assert.Equal(0, next.ExitCode);
        Assert.DoesNotContain("sleep", next.Log, StringComparison.Ordinal);
        Assert.Contains("\n1 ", "\n" + next.Log, StringComparison.Ordinal);
        Assert.Equal(0, Assert.Single(pool.Stats()).Replaced);
    }

    [Fact]
    public async Task A_request_cannot_reach_or_replace_the_engines_channel()
    {
        var pool = _context.Pool();
        var spec = await _context.ForkSpecAsync();
        await using var lease = await pool.AcquireAsync(spec, CancellationToken.None);

        // The helper removed its socket once the engine connected: there is nothing to talk to,
        // and what a request puts in its place is never used.
        var result = await lease.RunAsync(["sh", "-c", "ls -A /run/pipelines; printf 'garbage\\0\\377' > /run/pipelines/warm.sock; echo done"], NoEnv, Minute, CancellationToken.None);
        Assert.Equal("done\n", result.Log);
        var next = await lease.RunAsync(["echo", "still", "served"], NoEnv, Minute, CancellationToken.None);
        Assert.Equal("still served\n", next.Log);
    }

    [Fact]
    public async Task A_container_that_dies_during_a_request_fails_it_clearly_and_is_replaced()
    {
        var pool = _context.Pool();
        var spec = await _context.ForkSpecAsync();
        string dead;
        await using (var lease = await pool.AcquireAsync(spec, CancellationToken.None))
        {
            dead = lease.ContainerId;
            var run = lease.RunAsync(["sh", "-c", "echo about to die >&2; sleep 60"], NoEnv, Minute, CancellationToken.None);

            // Killed once the request is running in it (its sleep is in the container's process
            // list), not while the request may still be on its way to the helper.
            var running = Timeout(30);
            while (!(await _context.Docker.Containers.ListProcessesAsync(dead, new ContainerListProcessesParameters(), running)).Processes
                .Any(p => p.Any(c => c.Contains("sleep 60", StringComparison.Ordinal))))
            {
                await Task.Delay(TimeSpan.FromMilliseconds(50), running);
            }

            await _context.Docker.Containers.KillContainerAsync(dead, new ContainerKillParameters { Signal = "KILL" });
            var e = await Assert.ThrowsAsync<WarmContainerException>(() => run);
            Assert.Contains("is replaced", e.Message, StringComparison.Ordinal);
            Assert.Contains("about to die", e.Message, StringComparison.Ordinal);
            Assert.False(e.TimedOut);
        }

        await pool.WaitForAsync(s => s.Single().Replaced == 1 && pool.Removed == 1, Timeout(30));
        Assert.False(await _context.ExistsAsync(dead));
        await using (var lease = await pool.AcquireAsync(spec, CancellationToken.None))
        {
            Assert.NotEqual(dead, lease.ContainerId);
            Assert.Equal("ok\n", (await lease.RunAsync(["echo", "ok"], NoEnv, Minute, CancellationToken.None)).Log);
        }
    }

    [Fact]
    public async Task A_hung_container_is_killed_after_the_timeout_and_its_grace_and_replaced()
    {
        var pool = _context.Pool(o => o with { WarmHungGrace = TimeSpan.FromSeconds(1) });
        var spec = await _context.ForkSpecAsync();
        string hung;
        await using (var lease = await pool.AcquireAsync(spec, CancellationToken.None))
        {
            hung = lease.ContainerId;

            // A frozen container: its helper can neither kill the request nor answer.
            await _context.Docker.Containers.PauseContainerAsync(hung);
            var e = await Assert.ThrowsAsync<WarmContainerException>(() => lease.RunAsync(["sleep", "60"], NoEnv, TimeSpan.FromSeconds(1), CancellationToken.None));
            Assert.True(e.TimedOut);
            Assert.Contains("did not answer", e.Message, StringComparison.Ordinal);
        }

        await pool.WaitForAsync(s => s.Single().Replaced == 1 && pool.Removed == 1, Timeout(30));
        Assert.False(await _context.ExistsAsync(hung));
    }

    [Fact]
    public async Task A_helper_that_breaks_the_protocol_fails_its_request_and_is_replaced()
    {
        var pool = _context.Pool(o => o with { WarmHelper = WarmTestContext.BadHelper });
        var spec = await _context.ForkSpecAsync();
        string broken;
        await using (var lease = await pool.AcquireAsync(spec, CancellationToken.None))
        {
            broken = lease.ContainerId;
            var e = await Assert.ThrowsAsync<WarmContainerException>(() => lease.RunAsync(["echo", "hi"], NoEnv, Minute, CancellationToken.None));
            Assert.Contains("outside the protocol", e.Message, StringComparison.Ordinal);
            Assert.Contains("answering with garbage", e.Message, StringComparison.Ordinal);
        }

        await pool.WaitForAsync(s => s.Single().Replaced == 1 && pool.Removed == 1, Timeout(30));
        Assert.False(await _context.ExistsAsync(broken));
    }

    [Fact]
    public async Task A_cancelled_request_kills_its_process_and_the_container_serves_on()
    {
        var pool = _context.Pool();
        var spec = await _context.ForkSpecAsync();
        await using var lease = await pool.AcquireAsync(spec, CancellationToken.None);
        using var cancel = new CancellationTokenSource();
        var run = lease.RunAsync(["sh", "-c", "echo go; sleep 60"], NoEnv, Minute, cancel.Token);
        await cancel.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => run);
        Assert.Equal("after\n", (await lease.RunAsync(["echo", "after"], NoEnv, Minute, CancellationToken.None)).Log);
    }

    [Fact]
    public async Task A_warm_container_is_locked_down_like_a_one_shot_container()
    {
        var pool = _context.Pool();
        var spec = await _context.ForkSpecAsync();
        await using var lease = await pool.AcquireAsync(spec, CancellationToken.None);
        var inspect = await _context.Docker.Containers.InspectContainerAsync(lease.ContainerId);
        var config = inspect.Config!;
        var host = inspect.HostConfig!;
        Assert.Equal("65534:65534", config.User);
        Assert.True(config.NetworkDisabled);
        Assert.Equal("none", host.NetworkMode);
        Assert.True(host.ReadonlyRootfs);
        Assert.Equal(["ALL"], host.CapDrop);
        Assert.Contains("no-new-privileges", host.SecurityOpt);
        Assert.Equal(256L * 1024 * 1024, host.Memory);
        Assert.Equal(256L * 1024 * 1024, host.MemorySwap);
        Assert.Equal(128, host.PidsLimit);
        Assert.Equal("true", config.Labels[ContainerLabels.Managed]);
        Assert.True(config.Labels.ContainsKey(ContainerLabels.Owner));
        Assert.Equal(spec.Owner, config.Labels[DockerWarmPool.WarmOwnerLabel]);
        Assert.Equal([WarmLayout.Helper, WarmLayout.Control + "/warm.sock"], [.. config.Entrypoint, .. config.Cmd ?? []]);
        var mounts = inspect.Mounts.ToDictionary(m => m.Destination, m => m.RW);
        Assert.False(mounts["/in"]);
        Assert.True(mounts["/out"]);
        Assert.False(mounts["/steps"]);
        Assert.False(mounts[WarmLayout.Helper]);
        Assert.True(mounts[WarmLayout.Control]);

        var script = string.Join("; ", [
            "echo uid=$(id -u) gid=$(id -g)",
            "echo ifaces=$(ls /sys/class/net | tr '\\n' ' ')",
            "grep -E '^(CapEff|NoNewPrivs)' /proc/self/status",
            "(echo x > /root-write) 2>/dev/null && echo rootfs=writable || echo rootfs=readonly",
            "(echo x > /in/new) 2>/dev/null && echo in=writable || echo in=readonly",
            "(echo x > /.pipelines/warm) 2>/dev/null && echo helper=writable || echo helper=readonly",
        ]);
        var result = await lease.RunAsync(["sh", "-c", script], NoEnv, Minute, CancellationToken.None);
        Assert.Contains("uid=65534 gid=65534", result.Log, StringComparison.Ordinal);
        Assert.Matches(@"ifaces=lo\s*\n", result.Log);
        Assert.Matches(@"CapEff:\s+0000000000000000", result.Log);
        Assert.Matches(@"NoNewPrivs:\s+1", result.Log);
        Assert.Contains("rootfs=readonly", result.Log, StringComparison.Ordinal);
        Assert.Contains("in=readonly", result.Log, StringComparison.Ordinal);
        Assert.Contains("helper=readonly", result.Log, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Secrets_reach_the_command_and_are_masked_in_its_log()
    {
        var pool = _context.Pool();
        var spec = await _context.ForkSpecAsync() with { Secrets = new Dictionary<string, string> { ["TOKEN"] = "s3cr3t-value" } };
        await using var lease = await pool.AcquireAsync(spec, CancellationToken.None);
        var result = await lease.RunAsync(["sh", "-c", "echo token=$TOKEN; [ \"$TOKEN\" = s3cr3t-value ] && echo matches"], NoEnv, Minute, CancellationToken.None);
        Assert.Equal("token=***\nmatches\n", result.Log);
    }

    private static CancellationToken Timeout(int seconds) => new CancellationTokenSource(TimeSpan.FromSeconds(seconds)).Token;
}
