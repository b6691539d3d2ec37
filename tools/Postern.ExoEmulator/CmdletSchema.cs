using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Postern.ExoEmulator;

/// <summary>
/// Parameter binding as Exchange Online does it, from exo-cmdlets.json: unknown cmdlets and
/// parameters, parameters the cloud cmdlet lacks, values outside an enumeration, wrong types,
/// missing mandatory parameters and the documented value formats are refused with EXO's errors.
/// (Unlike Postern's own check it accepts what EXO accepts, e.g. parameters reserved for Microsoft.)
/// </summary>
public sealed class CmdletSchema
{
    private readonly Dictionary<string, Dictionary<string, Parameter>> _cmdlets = new(StringComparer.OrdinalIgnoreCase);

    public CmdletSchema()
    {
        using var stream = typeof(CmdletSchema).Assembly.GetManifestResourceStream("Postern.ExoEmulator.exo-cmdlets.json")
            ?? throw new InvalidOperationException("exo-cmdlets.json is not embedded");
        using var document = JsonDocument.Parse(stream);
        foreach (var cmdlet in document.RootElement.EnumerateObject())
        {
            if (cmdlet.Name.StartsWith('_'))
                continue;
            var parameters = new Dictionary<string, Parameter>(StringComparer.OrdinalIgnoreCase);
            foreach (var p in cmdlet.Value.GetProperty("parameters").EnumerateObject())
            {
                var v = p.Value;
                var online = v.GetProperty("online").GetBoolean();
                // A parameter the docs mark on-premises only still binds in the cloud cmdlet when inOnlineCmdlet says so.
                var inCloudCmdlet = online || (v.TryGetProperty("inOnlineCmdlet", out var inCmdlet) && inCmdlet.GetBoolean());
                parameters[p.Name] = new Parameter(
                    p.Name,
                    v.GetProperty("type").GetString()!,
                    v.TryGetProperty("values", out var values) && values.ValueKind == JsonValueKind.Array ? values.EnumerateArray().Select(x => x.GetString()!).ToArray() : null,
                    v.TryGetProperty("valuesOnPremOnly", out var onPrem) ? onPrem.EnumerateArray().Select(x => x.GetString()!).ToArray() : [],
                    inCloudCmdlet,
                    v.TryGetProperty("required", out var required) && required.GetBoolean(),
                    v.TryGetProperty("default", out var def) && def.ValueKind == JsonValueKind.String ? def.GetString() : null,
                    v.TryGetProperty("rulePart", out var part) ? part.GetString() : null);
            }
            _cmdlets[cmdlet.Name] = parameters;
        }
    }

    public sealed record Parameter(string Name, string Type, string[]? Values, string[] ValuesOnPremOnly, bool InCloudCmdlet,
        bool Required, string? Default, string? RulePart);

    public IReadOnlyCollection<Parameter> Parameters(string cmdlet) => _cmdlets[cmdlet].Values;

    /// <summary>Binds the request's parameters: canonical names, checked values. Throws <see cref="ExoError"/>.</summary>
    public Dictionary<string, JsonNode?> Bind(string cmdlet, JsonObject? given)
    {
        if (!_cmdlets.TryGetValue(cmdlet, out var parameters))
            throw new ExoError(400, "System.Management.Automation.CommandNotFoundException",
                $"The term '{cmdlet}' is not recognized as a name of a cmdlet, function, script file, or executable program.");
        var bound = new Dictionary<string, JsonNode?>(StringComparer.OrdinalIgnoreCase);
        foreach (var (name, value) in given ?? [])
        {
            if (!parameters.TryGetValue(name, out var p) || !p.InCloudCmdlet)
                throw ExoError.Binding($"A parameter cannot be found that matches parameter name '{name}'.");
            CheckValue(cmdlet, p, value);
            bound[p.Name] = value?.DeepClone();
        }
        var missing = parameters.Values.Where(p => p.Required && !bound.ContainsKey(p.Name)).Select(p => p.Name).ToArray();
        if (missing.Length > 0)
            throw ExoError.Binding($"Cannot process command because of one or more missing mandatory parameters: {string.Join(" ", missing)}.");
        return bound;
    }

    private static void CheckValue(string cmdlet, Parameter p, JsonNode? value)
    {
        if (value is null)
        {
            if (p.Required)
                throw ExoError.Binding($"Cannot bind argument to parameter '{p.Name}' because it is null.");
            return;
        }
        switch (p.Type)
        {
            case "Boolean" or "SwitchParameter":
                if (value.GetValueKind() is not (JsonValueKind.True or JsonValueKind.False))
                    throw Convert(p, value, "System.Boolean");
                return;
            case "Int32":
                if (value.GetValueKind() != JsonValueKind.Number)
                    throw Convert(p, value, "System.Int32");
                return;
            case "SclValue":
                if (value.GetValueKind() != JsonValueKind.Number || value.GetValue<int>() is < -1 or > 9)
                    throw ExoError.Binding($"Cannot bind parameter '{p.Name}' to the target. Exception setting \"{p.Name}\": \"The value must be -1 or between 0 and 9.\"");
                return;
        }
        IEnumerable<JsonNode?> items = value switch
        {
            JsonArray array => array,
            JsonObject table when p.Type == "MultiValuedProperty" =>
                (table["Add"] as JsonArray ?? []).Concat(table["Remove"] as JsonArray ?? []),
            JsonObject => throw Convert(p, value, p.Type),
            _ => [value],
        };
        foreach (var item in items)
        {
            if (item is null || item.GetValueKind() != JsonValueKind.String)
                throw Convert(p, item, p.Type);
            var text = item.GetValue<string>();
            if (p.Values is { } allowed && !Allowed(allowed, text))
                throw ExoError.Binding($"Cannot bind parameter '{p.Name}'. Cannot convert value \"{text}\" to type \"{p.Type}\". Error: \"Unable to match the identifier name {text} to a valid enumerator name. Specify one of the following enumerator names and try again: {string.Join(", ", allowed.Where(a => a != "$null"))}\"");
            if (p.ValuesOnPremOnly.Contains(text, StringComparer.OrdinalIgnoreCase))
                throw ExoError.Validation($"The value '{text}' of parameter {p.Name} isn't supported in the cloud-based service.");
            if (Format(p.Name, text) is { } problem)
                throw ExoError.Validation($"{p.Name}: '{text}' {problem}");
        }
    }

    private static bool Allowed(string[] allowed, string value) =>
        allowed.Any(a => a.Equals(value, StringComparison.OrdinalIgnoreCase)
            || (a.StartsWith("<TenantId>\\", StringComparison.Ordinal) && value.EndsWith("\\" + a[11..], StringComparison.OrdinalIgnoreCase)));

    private static ExoError Convert(Parameter p, JsonNode? value, string type) =>
        ExoError.Binding($"Cannot bind parameter '{p.Name}'. Cannot convert value \"{value?.ToJsonString()}\" to type \"{type}\".");

    /// <summary>The value formats the cmdlet reference documents.</summary>
    public static string? Format(string parameter, string value) => parameter switch
    {
        "SenderIPAddresses" => IsV4(value, 24) ? null : "isn't a valid IPv4 address or CIDR range (/24 to /32); IPv6 addresses and IP ranges aren't supported",
        "IPAllowList" or "IPBlockList" => IsV4(value, 24) || IsV4Range(value, 256) ? null : "isn't a valid IPv4 address, range (256 addresses at most) or CIDR range (/24 to /32)",
        "SenderIpRanges" or "ExceptIfSenderIpRanges" => IsV4(value, 0) || IsV4Range(value, uint.MaxValue) ? null : "isn't a valid IP address, range or CIDR range",
        "EFSkipIPs" => IsAnyIp(value) ? null : "isn't a valid IP address, range or CIDR range",
        "SendingInfrastructure" when value.Contains('/') || IPAddress.TryParse(value, out _) =>
            value.EndsWith("/24", StringComparison.Ordinal) && IsV4(value[..^3], 32) ? null : "isn't valid: an IP address must be written as a /24 range, e.g. 192.168.100.100/24",
        "TlsSenderCertificateName" or "TlsDomain" => value.LastIndexOf('*') > 0 ? "isn't valid: only a leading wildcard is allowed" : null,
        _ => null,
    };

    private static bool IsV4(string value, int minimumPrefix)
    {
        var slash = value.IndexOf('/', StringComparison.Ordinal);
        var address = slash < 0 ? value : value[..slash];
        if (!IPAddress.TryParse(address, out var ip) || ip.AddressFamily != AddressFamily.InterNetwork || address.Count(c => c == '.') != 3)
            return false;
        return slash < 0 || (int.TryParse(value[(slash + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out var prefix) && prefix >= minimumPrefix && prefix <= 32);
    }

    private static bool IsV4Range(string value, uint max)
    {
        var dash = value.IndexOf('-', StringComparison.Ordinal);
        if (dash < 0 || !IsV4(value[..dash], 32) || !IsV4(value[(dash + 1)..], 32))
            return false;
        var a = Number(value[..dash]);
        var b = Number(value[(dash + 1)..]);
        return b >= a && b - a + 1 <= max;
    }

    private static bool IsAnyIp(string value)
    {
        var dash = value.IndexOf('-', StringComparison.Ordinal);
        if (dash > 0)
            return IPAddress.TryParse(value[..dash], out _) && IPAddress.TryParse(value[(dash + 1)..], out _);
        var slash = value.IndexOf('/', StringComparison.Ordinal);
        if (slash < 0)
            return IPAddress.TryParse(value, out var single) && (single.AddressFamily == AddressFamily.InterNetworkV6 || IsV4(value, 32));
        return IPAddress.TryParse(value[..slash], out var net)
            && int.TryParse(value[(slash + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out var prefix)
            && prefix <= (net.AddressFamily == AddressFamily.InterNetwork ? 32 : 128);
    }

    private static uint Number(string address)
    {
        var b = IPAddress.Parse(address).GetAddressBytes();
        return ((uint)b[0] << 24) | ((uint)b[1] << 16) | ((uint)b[2] << 8) | b[3];
    }
}
