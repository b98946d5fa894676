using System.Diagnostics;
using Pipelines.Tests.Support;

namespace Pipelines.Tests.EndToEnd;

/// <summary>
/// Tiny images of the batch canary tests' own, built on the real engine from the busybox sample
/// image: a script that writes one row per input file (file, lines, score = lines / 7), and its
/// variants: the same image under another tag, one that plants a difference in one cell of one
/// row, one that moves every score by a relative 1e-11 (below the default tolerance), and one
/// that fails: it says why on stderr and exits 3.
/// </summary>
public sealed class BatchCanaryImages : IAsyncLifetime
{
    /// <summary>The planted row's input: its score is 0.5 higher on the planted image.</summary>
    public const string PlantedFile = "b/two.txt";

    private const string Script = """
        out=$1; shift
        printf 'file\tlines\tscore\n' > "$out"
        for f in "$@"; do
          awk -v name="${f#/in/}" 'END { s = NR / 7; SCORE_HOOK printf "%s\t%d\t%.12f\n", name, NR, s }' "$f" >> "$out"
        done
        """;

    /// <summary>Six small inputs (key, lines): two per task, three tasks.</summary>
    public static readonly (string Key, int Lines)[] Inputs = [("a/one.txt", 3), ("a/two.txt", 5), ("b/one.txt", 7), ("b/two.txt", 8), ("c/x.txt", 11), ("c/y.txt", 13)];

    private readonly string _id = Guid.NewGuid().ToString("N")[..10];
    private readonly List<string> _tags = [];

    public string Current => $"pipelines-tests/canary-{_id}:current";

    public string Retagged => $"pipelines-tests/canary-{_id}:retagged";

    public string Planted => $"pipelines-tests/canary-{_id}:planted";

    public string Nudged => $"pipelines-tests/canary-{_id}:nudged";

    public string Broken => $"pipelines-tests/canary-{_id}:broken";

    /// <summary>An input's content: its number of lines.</summary>
    public static string Content(int lines) => string.Concat(Enumerable.Range(1, lines).Select(i => $"line {i}\n"));

    /// <summary>The tests' workflow: one step of the image over the inputs, its table gathered as `scores`.</summary>
    public static string Workflow(string image, string inputUri, string outputUri) => $$"""
        version: 1
        name: canary-test
        input:
          uri: {{inputUri}}
          include: ["**/*.txt"]
          batch: 2
        steps:
          - name: score
            image: {{image}}
            command: ["sh", "/score", "/out/score.tsv", "{inputs}"]
            resources: { cpus: 1, memory: 64Mi, timeout: 2m }
            outputs: ["*.tsv"]
        gather:
          - name: scores
            from: score/*.tsv
        output:
          uri: {{outputUri}}
        """;

    public async Task InitializeAsync()
    {
        await BuildAsync(Current, "");
        await DockerAsync("tag", Current, Retagged);
        _tags.Add(Retagged);
        await BuildAsync(Planted, $"if (name == \"{PlantedFile}\") s = s + 0.5;");
        await BuildAsync(Nudged, "s = s * (1 + 1e-11);");
        await BuildAsync(Broken, "printf \"cannot score %s: the candidate is broken\\n\", name > \"/dev/stderr\"; exit 3;");
    }

    private async Task BuildAsync(string tag, string hook)
    {
        using var context = new TempFolder();
        context.Write("score", Script.Replace("SCORE_HOOK", hook, StringComparison.Ordinal) + "\n");
        context.Write("Dockerfile", "FROM pipelines-samples/pair-check:1\nCOPY score /score\n");
        await DockerAsync("build", "-q", "-t", tag, context.Path);
        _tags.Add(tag);
    }

    private static async Task DockerAsync(params string[] args)
    {
        var psi = new ProcessStartInfo("docker", args) { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.Environment["DOCKER_BUILDKIT"] = "0";
        using var p = Process.Start(psi)!;
        var err = p.StandardError.ReadToEndAsync();
        await p.StandardOutput.ReadToEndAsync();
        await p.WaitForExitAsync();
        Assert.True(p.ExitCode == 0, $"docker {string.Join(' ', args)}: {await err}");
    }

    public async Task DisposeAsync()
    {
        foreach (var tag in _tags)
        {
            // Tags only: the sample image underneath is everyone's.
            var psi = new ProcessStartInfo("docker", ["image", "rm", tag]) { RedirectStandardOutput = true, RedirectStandardError = true };
            using var p = Process.Start(psi)!;
            await p.WaitForExitAsync();
        }
    }
}
