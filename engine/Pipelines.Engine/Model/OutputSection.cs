using YamlDotNet.RepresentationModel;

namespace Pipelines.Model;

/// <summary>Builds <c>output</c>: where a run writes what it leaves.</summary>
internal static class OutputSection
{
    public static OutputSpec? Build(YamlMappingNode? node, ParseContext ctx, string? baseDir)
    {
        if (node is null)
        {
            return null;
        }

        var f = new YamlFields(node, "output", ctx);
        f.Known("uri");
        var uri = Locations.Resolve(f, "uri", required: true, baseDir, ctx);
        return uri is null ? null : new OutputSpec(uri);
    }
}
