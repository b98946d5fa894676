using Docker.DotNet;

namespace Pipelines.Containers.Cgroups;

/// <summary>
/// How the Docker engine places a container's cgroup (`docker info`: Cgroup Driver), and so what
/// our parent is called. cgroupfs: the parent is a path from the root of each hierarchy
/// (/pipelines), and a container's cgroup is /pipelines/ID. systemd (Docker's default wherever
/// systemd boots cgroup v2): the parent must be a slice (moby refuses anything else: "cgroup-parent
/// for systemd cgroup should be a valid slice named as "xxx.slice""), a container is the unit
/// docker-ID.scope in it, and a dash in a slice's name nests it (runc's ExpandSlice:
/// a-b.slice is /a.slice/a-b.slice), so the policy always' slice is pipelines_always.slice,
/// beside pipelines.slice and not under its idle class (a dash in a name of ours is written '_',
/// as Kubernetes escapes its systemd cgroup names).
/// </summary>
public sealed record CgroupDriver(string Name, string Source)
{
    private const string Slice = ".slice";

    /// <summary>The cgroupfs driver, as the engine said.</summary>
    public static readonly CgroupDriver Cgroupfs = new("cgroupfs", "the engine's");

    /// <summary>The systemd driver, as the engine said.</summary>
    public static readonly CgroupDriver Systemd = new("systemd", "the engine's");

    /// <summary>
    /// Whether the engine did not say and the driver is Docker's default for this machine: asked
    /// again before a later container (DockerEngine), since a wrong guess names a parent the
    /// engine refuses for every container.
    /// </summary>
    public bool Assumed { get; init; }

    /// <summary>Whether containers are systemd units in slices.</summary>
    public bool IsSystemd => Name == "systemd";

    /// <summary>For the worker's start line: "engine's cgroup driver cgroupfs", or how it was assumed.</summary>
    public string Said => $"{Source} cgroup driver {Name}";

    /// <summary>
    /// The driver of the engine's answer (Docker.DotNet's SystemInfoResponse.CgroupDriver:
    /// "cgroupfs", "systemd", or "none" for a rootless engine without cgroups).
    /// </summary>
    public static CgroupDriver FromEngine(string? driver) => driver?.Trim().ToLowerInvariant() switch
    {
        "systemd" => Systemd,
        "cgroupfs" => Cgroupfs,
        _ => new("cgroupfs", $"the engine said '{driver}', taken as the"),
    };

    /// <summary>
    /// Asks the engine (docker info) which driver it uses; where it does not answer within
    /// <paramref name="patience"/>, assumes Docker's own default for this machine (systemd where
    /// systemd runs and the machine boots cgroup v2, else cgroupfs), and says so.
    /// </summary>
    public static CgroupDriver Ask(DockerClient client, ICgroupHierarchy machine, TimeSpan patience)
    {
        try
        {
            using var limit = new CancellationTokenSource(patience);
            var info = client.System.GetSystemInfoAsync(limit.Token).GetAwaiter().GetResult();
            return FromEngine(info.CgroupDriver);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            var systemd = machine is CgroupV2 && Directory.Exists("/run/systemd/system");
            return new(systemd ? "systemd" : "cgroupfs", $"assumed (the engine did not say: {e.GetBaseException().Message}) Docker's default") { Assumed = true };
        }
    }

    /// <summary>
    /// Our parent's name as this driver knows it, from Docker:CgroupParent: under cgroupfs the
    /// folder (pipelines, or pipelines-always for policy always); under systemd the slice
    /// (pipelines.slice, or pipelines_always.slice beside it). A name that is already a slice is
    /// taken as written (its dashes nest it, as the user meant). A clear error for a name the
    /// driver refuses.
    /// </summary>
    public string ParentName(string configured, bool idle)
    {
        var name = configured.Trim().Trim('/');
        if (!IsSystemd)
        {
            return idle ? name : name + "-always";
        }

        if (name.Contains('/', StringComparison.Ordinal))
        {
            throw new PipelinesException($"Docker:CgroupParent '{configured}': the Docker engine uses systemd's cgroup driver, which takes a slice, not a path: write a name such as pipelines.slice (a dash nests: a-b.slice is inside a.slice)", retryHelps: false);
        }

        var stem = name.EndsWith(Slice, StringComparison.Ordinal) ? name[..^Slice.Length] : name.Replace('-', '_');
        var slice = stem + (idle ? "" : "_always") + Slice;
        ExpandSlice(slice, configured);
        return slice;
    }

    /// <summary>What the engine is told (HostConfig.CgroupParent): a path from the root of each hierarchy, or the slice.</summary>
    public string EngineParent(string parentName) => IsSystemd ? parentName : "/" + parentName.Trim('/');

    /// <summary>Where a parent's cgroup is, from the root of each hierarchy (/pipelines, /pipelines.slice).</summary>
    public string PathOf(string parentName) => IsSystemd ? ExpandSlice(parentName, parentName) : "/" + parentName.Trim('/');

    /// <summary>A new cgroup of its own for one attempt's container, under the parent: what the engine is told, and where it will be.</summary>
    public (string Engine, string Path) NewAttempt(string parentName)
    {
        var hex = Guid.NewGuid().ToString("N");
        if (!IsSystemd)
        {
            var path = $"/{parentName.Trim('/')}/{AttemptPrefix}{hex}";
            return (path, path);
        }

        var slice = $"{parentName[..^Slice.Length]}-{SystemdAttempt}{hex}{Slice}";
        return (slice, ExpandSlice(slice, slice));
    }

    /// <summary>Whether a folder under our parent (its name) is an attempt's cgroup.</summary>
    public bool IsAttempt(string parentName, string folder) => IsSystemd
        ? folder.StartsWith(parentName[..^Slice.Length] + "-" + SystemdAttempt, StringComparison.Ordinal) && folder.EndsWith(Slice, StringComparison.Ordinal)
        : folder.StartsWith(AttemptPrefix, StringComparison.Ordinal);

    /// <summary>A container's own cgroup, made by the engine under <paramref name="parentPath"/>: ID under cgroupfs, the unit docker-ID.scope under systemd.</summary>
    public string ContainerCgroup(string parentPath, string containerId) =>
        $"{parentPath.TrimEnd('/')}/{(IsSystemd ? $"docker-{containerId}.scope" : containerId)}";

    /// <summary>The prefix of attempt cgroups under a cgroupfs parent.</summary>
    public const string AttemptPrefix = "attempt-";

    /// <summary>The part of an attempt slice's name after its parent's: pipelines-attempt_HEX.slice is inside pipelines.slice.</summary>
    private const string SystemdAttempt = "attempt_";

    /// <summary>
    /// The cgroup path of a slice, by the rule Docker applies: moby takes a systemd cgroup
    /// parent only when it is longer than 6 characters and ends in ".slice"; runc's ExpandSlice
    /// refuses a '/' and an empty dash-separated part (a--b.slice, -a.slice, a-.slice), "-.slice"
    /// is the root, and test-a-b.slice is /test.slice/test-a.slice/test-a-b.slice. systemd takes
    /// only letters, digits and ":_.-" in a unit's name.
    /// </summary>
    public static string ExpandSlice(string slice, string configured)
    {
        if (slice.Length <= Slice.Length || !slice.EndsWith(Slice, StringComparison.Ordinal))
        {
            throw Refused(configured, $"'{slice}' is not a slice: the engine's systemd cgroup driver takes a cgroup parent only as a valid slice named as \"xxx.slice\"");
        }

        if (slice.Any(c => !char.IsAsciiLetterOrDigit(c) && c is not (':' or '_' or '.' or '-')))
        {
            throw Refused(configured, $"'{slice}' has a character systemd does not take in a unit's name (letters, digits, ':', '_', '.' and '-' only)");
        }

        var stem = slice[..^Slice.Length];
        if (stem == "-")
        {
            return "/";
        }

        var path = "";
        var prefix = "";
        foreach (var component in stem.Split('-'))
        {
            if (component.Length == 0)
            {
                throw Refused(configured, $"'{slice}' has an empty part between dashes (a dash nests a slice in the one its name starts with: a-b.slice is inside a.slice)");
            }

            path += "/" + prefix + component + Slice;
            prefix += component + "-";
        }

        return path;
    }

    private static PipelinesException Refused(string configured, string why) =>
        new($"Docker:CgroupParent '{configured}': {why}", retryHelps: false);
}
