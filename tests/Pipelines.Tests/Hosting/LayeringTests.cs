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
    /// The pairs of parts that still use each other both ways (16 when this test was written,
    /// 2026-12-06, read from the compiled assemblies): a ratchet, not an allowance. A new pair
    /// fails the test, and so does a pair listed here that is gone, so that the list only shrinks
    /// as the cycles are broken (docs/architecture.md, "Layering").
    /// </summary>
    private static readonly string[] TwoWayPairsLeft =
    [
    ];

    [Fact]
    public void No_pair_of_parts_uses_each_other_both_ways_beyond_those_not_yet_broken()
    {
        var edges = Edges();
        var pairs = edges.Keys.Where(e => string.CompareOrdinal(e.From, e.To) < 0 && edges.ContainsKey((e.To, e.From)))
            .ToDictionary(e => $"{e.From} <-> {e.To}", e => string.Join(", ", edges[e].Distinct().Take(3)) + " / " + string.Join(", ", edges[(e.To, e.From)].Distinct().Take(3)), StringComparer.Ordinal);
        var added = pairs.Keys.Except(TwoWayPairsLeft, StringComparer.Ordinal).Select(p => $"{p} ({pairs[p]})").ToList();
        var broken = TwoWayPairsLeft.Except(pairs.Keys, StringComparer.Ordinal).ToList();
        Assert.True(added.Count == 0, "parts that now use each other both ways: " + string.Join("; ", added));
        Assert.True(broken.Count == 0, "cycles broken: take them off TwoWayPairsLeft and docs/architecture.md: " + string.Join("; ", broken));
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

    [Fact]
    public void Settings_and_model_use_no_part_above_them()
    {
        var edges = Edges();
        Assert.DoesNotContain(edges.Keys, e => e.From == "Settings" && e.To is not ("Core" or "Model"));
        Assert.DoesNotContain(edges.Keys, e => e.From == "Core");
    }
}
