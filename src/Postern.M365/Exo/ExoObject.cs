using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Postern.M365.Exo;

/// <summary>
/// One object from a cmdlet's output (<c>value[]</c> of an InvokeCommand response). Property names
/// are matched case-insensitively, OData annotations (<c>Prop@odata.type</c>) are dropped, and
/// multi-valued properties read as lists whichever way Exchange wrote them.
/// </summary>
public sealed class ExoObject
{
    private readonly Dictionary<string, JsonNode?> _properties = new(StringComparer.OrdinalIgnoreCase);

    public ExoObject(JsonObject json)
    {
        foreach (var (name, value) in json)
        {
            if (name.Contains('@'))
                continue;
            _properties[name] = value?.DeepClone();
        }
    }

    public static ExoObject Parse(string json) => new(JsonNode.Parse(json)!.AsObject());

    public IEnumerable<string> PropertyNames => _properties.Keys;

    public bool Has(string name) => _properties.TryGetValue(name, out var value) && value is not null;

    public JsonNode? this[string name] => _properties.GetValueOrDefault(name);

    public string Name => GetString("Name") ?? GetString("Identity") ?? "";

    /// <summary>A scalar property as text; null when absent or null.</summary>
    public string? GetString(string name) => _properties.GetValueOrDefault(name) switch
    {
        null => null,
        JsonValue v when v.GetValueKind() == JsonValueKind.String => v.GetValue<string>(),
        JsonValue v when v.GetValueKind() is JsonValueKind.True or JsonValueKind.False => v.GetValue<bool>() ? "True" : "False",
        JsonValue v => v.ToJsonString(),
        JsonArray a => string.Join(",", a.Select(x => x?.ToString())),
        var other => other.ToJsonString(),
    };

    public bool? GetBool(string name) => _properties.GetValueOrDefault(name) switch
    {
        JsonValue v when v.GetValueKind() is JsonValueKind.True or JsonValueKind.False => v.GetValue<bool>(),
        JsonValue v when v.GetValueKind() == JsonValueKind.String && bool.TryParse(v.GetValue<string>(), out var b) => b,
        _ => null,
    };

    public int? GetInt(string name) => _properties.GetValueOrDefault(name) switch
    {
        JsonValue v when v.GetValueKind() == JsonValueKind.Number => v.GetValue<int>(),
        JsonValue v when v.GetValueKind() == JsonValueKind.String
            && int.TryParse(v.GetValue<string>(), NumberStyles.Integer, CultureInfo.InvariantCulture, out var i) => i,
        _ => null,
    };

    /// <summary>A multi-valued property as a list; a single value reads as one item, null or absent as none.</summary>
    public IReadOnlyList<string> GetList(string name) => _properties.GetValueOrDefault(name) switch
    {
        null => [],
        JsonArray a => a.Where(x => x is not null).Select(x => x is JsonValue v && v.GetValueKind() == JsonValueKind.String ? v.GetValue<string>() : x!.ToJsonString()).ToArray(),
        JsonValue v when v.GetValueKind() == JsonValueKind.String => v.GetValue<string>() is { Length: > 0 } s ? [s] : [],
        var other => [other.ToJsonString()],
    };
}
