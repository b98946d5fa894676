using YamlDotNet.RepresentationModel;

namespace Pipelines.Model;

/// <summary>Builds <c>trigger</c>: the location whose new objects start runs, and how long they must settle.</summary>
internal static class TriggerSection
{
    public static TriggerSpec? Build(YamlMappingNode? node, ParseContext ctx, string? baseDir)
    {
        if (node is null)
        {
            return null;
        }

        var f = new YamlFields(node, "trigger", ctx);
        f.Known("uri", "include", "settle");
        var uri = Locations.Resolve(f, "uri", required: true, baseDir, ctx);
        var include = f.StringList("include") ?? ["**"];
        foreach (var (glob, i) in include.Select((g, i) => (g, i)))
        {
            f.CheckGlob("include", i, glob);
        }

        var settle = TimeSpan.FromSeconds(30);
        var settleText = f.String("settle", required: false);
        if (settleText is not null && !Quantities.TryParseDuration(settleText, out settle))
        {
            ctx.Add(f.Node("settle")!, "trigger.settle", $"'{settleText}' is not a duration (e.g. 30s, 5m)");
        }

        return uri is null ? null : new TriggerSpec(uri, include, settle);
    }
}
