using System.Text.Json;
using System.Text.Json.Serialization;

namespace Pipelines.Tenancy;

/// <summary>
/// A tenant in JSON is its name (<c>"lab-a"</c>), as in configuration and on the command line; a
/// name that is not a tenant name is refused as the rest of the document would be.
/// </summary>
public sealed class TenantIdJsonConverter : JsonConverter<TenantId>
{
    public override TenantId Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
        TenantId.TryParse(reader.GetString()) ?? throw new JsonException($"'{reader.GetString()}' is not a tenant name");

    public override void Write(Utf8JsonWriter writer, TenantId value, JsonSerializerOptions options) => writer.WriteStringValue(value.Value);
}
