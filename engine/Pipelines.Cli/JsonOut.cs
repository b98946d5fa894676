using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace Pipelines.Cli;

/// <summary>
/// What `--json` prints: one JSON document on stdout, its first field <c>schema</c> naming what it
/// is and its version (<c>pipelines.run/1</c>; docs/cli.md describes each), property names in
/// snake_case, times in ISO 8601, states as their names. A field is added to a schema without a
/// new version; a field removed or changed in meaning gets one.
/// </summary>
internal static class JsonOut
{
    public static readonly JsonSerializerOptions Options = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DictionaryKeyPolicy = null,
        WriteIndented = true,

        // Read by scripts and people, never embedded in HTML: "+00:00" and a file named "é.fastq"
        // as written, not as \u002B and \u00E9 (still valid JSON either way).
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower) },
    };

    /// <summary>Prints <paramref name="document"/> with <paramref name="schema"/> as its first field.</summary>
    public static void Write(string schema, object document) =>
        Console.WriteLine(With(schema, JsonSerializer.SerializeToNode(document, document.GetType(), Options)!.AsObject()).ToJsonString(Options));

    /// <summary>Prints a document some part of the engine already writes as JSON, with <paramref name="schema"/> put first.</summary>
    public static void WriteJson(string schema, string json) =>
        Console.WriteLine(With(schema, JsonNode.Parse(json)!.AsObject()).ToJsonString(Options));

    private static JsonObject With(string schema, JsonObject body)
    {
        var document = new JsonObject { ["schema"] = schema };
        foreach (var (name, value) in body.ToList())
        {
            body.Remove(name);
            document[name] = value;
        }

        return document;
    }
}
