using System.Diagnostics;

namespace Pipelines.Containers.Cgroups;

/// <summary>
/// A slice's settings through systemd, under Docker's systemd cgroup driver. systemd owns a
/// slice's cgroup and writes its cpu.idle and cpu.weight itself whenever it applies the slice's
/// settings (when the first container's scope starts in it, and at every reload), so a value
/// written to the files would be undone: the class is set on the unit (`systemctl set-property
/// --runtime`, kept until the next boot; the slice's unit file keeps it for good), and a slice
/// an attempt no longer needs is stopped, which removes its cgroup.
/// </summary>
internal static class SystemdSlice
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(15);

    /// <summary>How an answer starts where systemctl itself could not be run (not installed, as in the worker's image).</summary>
    public const string CannotRun = "systemctl cannot be run";

    /// <summary>Sets one property of a slice (e.g. CPUWeight=idle) for this boot; null when systemd took it, else what it said.</summary>
    public static string? SetProperty(string slice, string property) => Systemctl("set-property", "--runtime", slice, property);

    /// <summary>Stops a slice (without waiting for the job), which removes its cgroup; null when systemd took it, else what it said.</summary>
    public static string? Stop(string slice) => Systemctl("stop", "--no-block", slice);

    private static string? Systemctl(params string[] args)
    {
        try
        {
            using var process = Process.Start(new ProcessStartInfo("systemctl", args)
            {
                UseShellExecute = false,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
            })!;
            var error = process.StandardError.ReadToEndAsync();
            _ = process.StandardOutput.ReadToEndAsync();
            if (!process.WaitForExit(Patience))
            {
                process.Kill();
                return $"systemctl {string.Join(' ', args)} did not end within {Patience.TotalSeconds:0} s";
            }

            return process.ExitCode == 0 ? null : $"systemctl {string.Join(' ', args)}: {error.Result.Trim()} (exit {process.ExitCode})";
        }
        catch (Exception e) when (e is System.ComponentModel.Win32Exception or InvalidOperationException or IOException)
        {
            return $"{CannotRun}: {e.Message}";
        }
    }
}
