using System.Globalization;
using System.Text;
using System.Text.Json.Serialization;
using Pipelines.Storage;

namespace Pipelines.Planning;

/// <summary>
/// What determines a task's result, component by component: the identity-format version, each
/// input key with its content tag, the unit's captures, and each step's name, image digest,
/// expanded command, env, resources and kept-output globs. The task id is the digest of its
/// <see cref="CanonicalForm"/>, so equal ids mean equal identities; the components are kept
/// (in the cache manifest) so that a later run can say which of them changed.
/// </summary>
internal sealed record TaskIdentity(
    [property: JsonPropertyName("format")] int Format,
    [property: JsonPropertyName("inputs")] IReadOnlyList<IdentityInput> Inputs,
    [property: JsonPropertyName("captures")] IReadOnlyDictionary<string, string> Captures,
    [property: JsonPropertyName("steps")] IReadOnlyList<IdentityStep> Steps)
{
    /// <summary>
    /// The identity format this engine writes. 2 added resources to the id (1 left them out), so
    /// the first run after the upgrade misses the cache once (docs/decisions.md).
    /// </summary>
    public const int CurrentFormat = 2;

    /// <summary>The task id: the first 24 hex digits of the sha256 of <see cref="CanonicalForm"/>.</summary>
    [JsonIgnore]
    public string TaskId => Hashing.Sha256Hex(Encoding.UTF8.GetBytes(CanonicalForm()))[..24];

    /// <summary>
    /// One line per component, NUL-separated so no value can be mistaken for another field.
    /// Two components are kept for people but left out: the image's name (the digest is what
    /// runs, and a new tag on the same digest is the same work) and the captures (they act only
    /// through the command and env they expand into, so two samples of the same files with the
    /// same command are the same work, which the planner refuses).
    /// </summary>
    public string CanonicalForm()
    {
        var sb = new StringBuilder("pipelines-task-v").Append(Format.ToString(CultureInfo.InvariantCulture)).Append('\n');
        foreach (var s in Steps)
        {
            sb.Append("step\0").Append(s.Name).Append('\0').Append(s.ImageDigest).Append('\n');
            foreach (var a in s.Command)
            {
                sb.Append("arg\0").Append(a).Append('\n');
            }

            foreach (var (k, v) in s.Env.OrderBy(kv => kv.Key, StringComparer.Ordinal))
            {
                sb.Append("env\0").Append(k).Append('\0').Append(v).Append('\n');
            }

            foreach (var (k, v) in s.Resources.OrderBy(kv => kv.Key, StringComparer.Ordinal))
            {
                sb.Append("res\0").Append(k).Append('\0').Append(v).Append('\n');
            }

            foreach (var o in s.Outputs)
            {
                sb.Append("keep\0").Append(o).Append('\n');
            }
        }

        foreach (var i in Inputs)
        {
            sb.Append("in\0").Append(i.Key).Append('\0').Append(i.Tag).Append('\n');
        }


        return sb.ToString();
    }

    /// <summary>The sha256 (hex) of a task's unit and workflow name: the same on every run of it, whatever its images (the cache's unit index, the canary's sample).</summary>
    public static string UnitDigest(string workflow, IReadOnlyList<InputFile> inputs, IReadOnlyDictionary<string, string> captures)
    {
        var unit = captures.Count > 0
            ? "captures\0" + string.Join("\0", captures.OrderBy(c => c.Key, StringComparer.Ordinal).Select(c => c.Key + "=" + c.Value))
            : "inputs\0" + string.Join("\0", inputs.Select(i => i.Key).Order(StringComparer.Ordinal));
        return Hashing.Sha256Hex(Encoding.UTF8.GetBytes(workflow + "\0" + unit));
    }
}

/// <summary>An input of a task's identity: its key relative to input.uri and its content tag (an ETag or a sha256).</summary>
internal sealed record IdentityInput(
    [property: JsonPropertyName("key")] string Key,
    [property: JsonPropertyName("tag")] string Tag);

/// <summary>A step of a task's identity, with its placeholders expanded ({task} left literal).</summary>
internal sealed record IdentityStep(
    [property: JsonPropertyName("name")] string Name,
    [property: JsonPropertyName("image")] string Image,
    [property: JsonPropertyName("image_digest")] string ImageDigest,
    [property: JsonPropertyName("command")] IReadOnlyList<string> Command,
    [property: JsonPropertyName("env")] IReadOnlyDictionary<string, string> Env,
    [property: JsonPropertyName("resources")] IReadOnlyDictionary<string, string> Resources,
    [property: JsonPropertyName("outputs")] IReadOnlyList<string> Outputs)
{
    /// <summary>The limits as the identity names them: cpus, memory (bytes), timeout (seconds), pids, disk (bytes), files.</summary>
    public static IReadOnlyDictionary<string, string> ResourcesOf(Model.Resources r) => new Dictionary<string, string>(StringComparer.Ordinal)
    {
        ["cpus"] = r.Cpus.ToString("R", CultureInfo.InvariantCulture),
        ["memory"] = r.MemoryBytes.ToString(CultureInfo.InvariantCulture),
        ["timeout"] = r.Timeout.TotalSeconds.ToString("R", CultureInfo.InvariantCulture),
        ["pids"] = r.Pids.ToString(CultureInfo.InvariantCulture),
        ["disk"] = r.DiskBytes.ToString(CultureInfo.InvariantCulture),
        ["files"] = r.Files.ToString(CultureInfo.InvariantCulture),
    };
}
