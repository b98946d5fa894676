using Pipelines.Tests.Support;

namespace Pipelines.Tests.Hosting;

/// <summary>The engine's parts depend on each other in one direction only (docs/architecture.md).</summary>
[Unit]
public sealed class LayeringTests
{
    private static string Bin(string assembly) => Path.Combine(AppContext.BaseDirectory, assembly + ".dll");

    /// <summary>The part of a type: the engine's namespace under Pipelines (Containers.Warm is Containers), the server and the CLI as parts of their own.</summary>
    internal static string? PartOf(TypeReferences.TypeName type)
    {
        if (type.Assembly is not ("Pipelines.Engine" or "Pipelines.Server" or "pipelines"))
        {
            return null;
        }

        if (type.Namespace == "Pipelines")
        {
            return type.Assembly switch { "Pipelines.Engine" => "Core", "Pipelines.Server" => "Server", _ => "Cli" };
        }

        if (!type.Namespace.StartsWith("Pipelines.", StringComparison.Ordinal))
        {
            return null;
        }

        var first = type.Namespace["Pipelines.".Length..].Split('.')[0];
        return first;
    }

    internal static Dictionary<(string From, string To), List<string>> Edges()
    {
        var edges = new Dictionary<(string, string), List<string>>();
        foreach (var assembly in new[] { "Pipelines.Engine", "Pipelines.Server", "pipelines" })
        {
            foreach (var (type, uses) in TypeReferences.Read(Bin(assembly)))
            {
                if (PartOf(type) is not { } from)
                {
                    continue;
                }

                foreach (var used in uses)
                {
                    if (PartOf(used) is { } to && to != from)
                    {
                        if (!edges.TryGetValue((from, to), out var why))
                        {
                            edges[(from, to)] = why = [];
                        }

                        why.Add($"{type.Name} -> {used.Name}");
                    }
                }
            }
        }

        return edges;
    }

    /// <summary>
    /// The parts from the bottom up: a part uses only the parts before it, never one after it
    /// (docs/architecture.md, "Layering", lists the same order; a test below holds the two
    /// together). A new part takes its place here and there.
    /// </summary>
    internal static readonly string[] Layers =
    [
        "Core", "Model", "Settings", "Telemetry", "Storage", "Tenancy", "Planning", "RunStore", "Quotas", "Queue", "Containers", "Harvest",
        "Algorithms", "Canary", "Runs", "Explain", "Worker", "Gather", "Lineage", "Triggers", "Functions", "Hosting",
        "Server", "Cli",
    ];

    /// <summary>
    /// Uses of a higher part not yet undone, each with why: one list, a ratchet (a listed edge that
    /// is gone fails the test below, so that the list only shrinks). docs/architecture.md names them too.
    /// </summary>
    internal static readonly Dictionary<(string From, string To), string> NotYetUndone = new()
    {
    };

    /// <summary>Every use of a part by one at or below it in <paramref name="layers"/>, or by or of a part not in it, each named with its types.</summary>
    internal static List<string> Breaches(Dictionary<(string From, string To), List<string>> edges, string[] layers)
    {
        var breaches = new List<string>();
        foreach (var ((from, to), why) in edges.OrderBy(e => e.Key.From, StringComparer.Ordinal).ThenBy(e => e.Key.To, StringComparer.Ordinal))
        {
            int low = Array.IndexOf(layers, from), high = Array.IndexOf(layers, to);
            var types = string.Join(", ", why.Distinct().Order(StringComparer.Ordinal).Take(6));
            if (low < 0 || high < 0)
            {
                breaches.Add($"{from} -> {to}: {(low < 0 ? from : to)} is not in the layer order ({types})");
            }
            else if (high > low)
            {
                breaches.Add($"{from} -> {to}: {from} is below {to} and may not use it ({types})");
            }
        }

        return breaches;
    }

    [Fact]
    public void Every_part_uses_only_the_parts_below_it()
    {
        var edges = Edges();
        var breaches = Breaches(edges.Where(e => !NotYetUndone.ContainsKey(e.Key)).ToDictionary(), Layers);
        var undone = NotYetUndone.Keys.Where(e => !edges.ContainsKey(e)).Select(e => $"{e.From} -> {e.To}").ToList();
        Assert.True(undone.Count == 0, "no longer used: take them off NotYetUndone and docs/architecture.md: " + string.Join("; ", undone));
        Assert.True(breaches.Count == 0, "parts that use a part above them (cure: move the small type down, or an interface owned by the lower part):\n" + string.Join("\n", breaches));
    }

    [Fact]
    public void A_use_of_a_higher_part_or_of_an_unplaced_one_is_named_with_its_types()
    {
        var edges = new Dictionary<(string From, string To), List<string>>
        {
            [("Model", "Hosting")] = ["Workflow -> EngineHost"],
            [("Hosting", "Model")] = ["EngineHost -> Workflow"],
            [("Model", "Tenants")] = ["Workflow -> Tenant"],
        };

        var breaches = Breaches(edges, Layers);

        Assert.Equal(2, breaches.Count);
        Assert.Contains(breaches, b => b.StartsWith("Model -> Hosting: Model is below Hosting", StringComparison.Ordinal) && b.Contains("Workflow -> EngineHost", StringComparison.Ordinal));
        Assert.Contains(breaches, b => b.StartsWith("Model -> Tenants: Tenants is not in the layer order", StringComparison.Ordinal));
    }

    [Fact]
    public void The_architecture_doc_lists_the_same_layers_in_the_same_order()
    {
        // The line of docs/architecture.md that starts "Layers, from the bottom up:" names each part in backquotes.
        var line = File.ReadLines(Path.Combine(TestEnvironment.RepoRoot, "docs", "architecture.md"))
            .SingleOrDefault(l => l.StartsWith("Layers, from the bottom up:", StringComparison.Ordinal));
        if (line is null)
        {
            Assert.Fail("docs/architecture.md has no line starting \"Layers, from the bottom up:\"");
            return;
        }

        var listed = line.Split('`').Where((_, i) => i % 2 == 1).ToArray();
        Assert.Equal(Layers, listed);
    }

    /// <summary>Who may name Hangfire's types: the queue, the hosting, and the dashboard's pages (Server/Dashboard).</summary>
    private static bool MayNameHangfire(TypeReferences.TypeName type) =>
        PartOf(type) is "Queue" or "Hosting" || type.Namespace.StartsWith("Pipelines.Server.Dashboard", StringComparison.Ordinal);

    [Fact]
    public void Hangfire_is_named_only_by_the_queue_the_hosting_and_the_dashboard()
    {
        // The other parts reach the queue through its seams (ITaskQueue, IRecurringJobs, IInvocationQueue,
        // IWorkerBoard and the handlers the queue's jobs deliver to); a type elsewhere naming Hangfire fails here.
        var naming = new List<string>();
        foreach (var assembly in new[] { "Pipelines.Engine", "Pipelines.Server", "pipelines" })
        {
            foreach (var (type, uses) in TypeReferences.Read(Bin(assembly)))
            {
                var hangfire = uses.Where(u => u.Assembly.StartsWith("Hangfire", StringComparison.Ordinal)).Select(u => u.Name).Distinct().Order(StringComparer.Ordinal).ToList();
                if (hangfire.Count > 0 && !MayNameHangfire(type))
                {
                    naming.Add($"{type} ({string.Join(", ", hangfire.Take(6))})");
                }
            }
        }

        Assert.Contains("Pipelines.Queue.HangfireTaskQueue", TypeReferences.Read(Bin("Pipelines.Engine")).Where(t => t.Value.Any(u => u.Assembly == "Hangfire.Core")).Select(t => t.Key.ToString()));
        naming.Sort(StringComparer.Ordinal);
        Assert.True(naming.Count == 0, "types outside Queue/, Hosting/ and Server/Dashboard/ that name Hangfire (put it behind a seam of the queue): " + string.Join("; ", naming));
    }

    [Fact]
    public void The_reader_sees_what_the_parts_are_known_to_use()
    {
        // The reader's own check: references through a constructor, a generic argument and a method body are all seen.
        var edges = Edges();
        Assert.Contains(("Hosting", "Worker"), edges.Keys);
        Assert.Contains(("Server", "Hosting"), edges.Keys);
        Assert.Contains(("Cli", "Server"), edges.Keys);
        Assert.DoesNotContain(("Model", "Hosting"), edges.Keys);
        Assert.DoesNotContain(("Settings", "Hosting"), edges.Keys);
    }
}
