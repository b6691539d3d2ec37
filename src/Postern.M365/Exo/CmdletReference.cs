using System.Globalization;
using System.Net;
using System.Text.Json;

namespace Postern.M365.Exo;

/// <summary>What the reference says about one parameter of one cmdlet.</summary>
public sealed record CmdletParameter(
    string Name,
    string Type,
    IReadOnlyList<string>? Values,
    IReadOnlyList<string> ValuesOnPremOnly,
    bool Online,
    bool Required,
    bool ReservedInternal,
    bool Deprecated,
    bool PartnerTypeOnly,
    bool OnPremisesTypeOnly,
    string? RulePart,
    string? Default);

/// <summary>
/// The cmdlets, parameters and values of Exchange Online that Postern may use, from
/// <c>exo-cmdlets.json</c> (built from Microsoft's cmdlet reference). <see cref="Validate"/> is
/// stricter than Exchange itself: besides unknown names and values it refuses parameters that
/// do not apply to Exchange Online, are reserved for Microsoft, or are deprecated, and the
/// value formats the reference documents (IPv4-only lists, /24 spoof entries, …).
/// </summary>
public sealed class CmdletReference
{
    /// <summary>
    /// Parameters the reference marks as effective only for the other connector type, used on purpose:
    /// an "OnPremises" (your organisation's server) inbound connector identified by IP address is what
    /// the admin centre creates for seed 004, and Microsoft's own add-on example passes RequireTls and
    /// RestrictDomainsToCertificate to an OnPremises connector (exo-mapping.md §2a).
    /// </summary>
    private static readonly HashSet<string> ConnectorTypeExceptions = new(StringComparer.OrdinalIgnoreCase)
    {
        "New-InboundConnector:SenderIPAddresses", "Set-InboundConnector:SenderIPAddresses",
        "New-InboundConnector:RequireTls", "Set-InboundConnector:RequireTls",
        "New-InboundConnector:RestrictDomainsToCertificate", "Set-InboundConnector:RestrictDomainsToCertificate",
    };

    private static readonly HashSet<string> ListTypes = new(StringComparer.Ordinal)
    {
        "MultiValuedProperty", "String[]", "Word[]", "Pattern[]", "RecipientIdParameter[]", "IncidentReportContent[]",
    };

    private readonly Dictionary<string, Dictionary<string, CmdletParameter>> _cmdlets = new(StringComparer.OrdinalIgnoreCase);

    private CmdletReference(JsonDocument document)
    {
        foreach (var cmdlet in document.RootElement.EnumerateObject())
        {
            if (cmdlet.Name.StartsWith('_'))
                continue;
            var parameters = new Dictionary<string, CmdletParameter>(StringComparer.OrdinalIgnoreCase);
            foreach (var p in cmdlet.Value.GetProperty("parameters").EnumerateObject())
            {
                var v = p.Value;
                parameters[p.Name] = new CmdletParameter(
                    p.Name,
                    v.GetProperty("type").GetString() ?? "",
                    v.TryGetProperty("values", out var values) && values.ValueKind == JsonValueKind.Array
                        ? values.EnumerateArray().Select(x => x.GetString()!).ToArray()
                        : null,
                    v.TryGetProperty("valuesOnPremOnly", out var onPrem) ? onPrem.EnumerateArray().Select(x => x.GetString()!).ToArray() : [],
                    Flag(v, "online"),
                    Flag(v, "required"),
                    Flag(v, "reservedInternal"),
                    Flag(v, "deprecated"),
                    Flag(v, "partnerTypeOnly"),
                    Flag(v, "onPremisesTypeOnly"),
                    v.TryGetProperty("rulePart", out var part) ? part.GetString() : null,
                    v.TryGetProperty("default", out var def) && def.ValueKind == JsonValueKind.String ? def.GetString() : null);
            }
            _cmdlets[cmdlet.Name] = parameters;
        }
    }

    /// <summary>The reference shipped inside Postern.M365.</summary>
    public static CmdletReference Default { get; } = Load();

    public IEnumerable<string> Cmdlets => _cmdlets.Keys;

    public static CmdletReference Load()
    {
        using var stream = typeof(CmdletReference).Assembly.GetManifestResourceStream("Postern.M365.exo-cmdlets.json")
            ?? throw new InvalidOperationException("exo-cmdlets.json is not embedded in Postern.M365");
        using var document = JsonDocument.Parse(stream);
        return new CmdletReference(document);
    }

    public static CmdletReference Load(string path)
    {
        using var document = JsonDocument.Parse(File.ReadAllBytes(path));
        return new CmdletReference(document);
    }

    public bool HasCmdlet(string cmdlet) => _cmdlets.ContainsKey(cmdlet);

    public CmdletParameter? Parameter(string cmdlet, string parameter) =>
        _cmdlets.TryGetValue(cmdlet, out var parameters) ? parameters.GetValueOrDefault(parameter) : null;

    public IEnumerable<CmdletParameter> Parameters(string cmdlet) =>
        _cmdlets.TryGetValue(cmdlet, out var parameters) ? parameters.Values : [];

    /// <summary>Every reason the call is not one Postern may send to Exchange Online; empty when it is.</summary>
    /// <summary>
    /// Transport rule parameters that are only ever given together (New-TransportRule.md: "When you use this
    /// parameter, you also need to use …"; conditions-and-exceptions.md: "The name of the header field and the value
    /// of the header field are always used together"), in every call that gives either, Set-TransportRule included.
    /// </summary>
    public static readonly IReadOnlyList<(string First, string Second)> RuleParameterPairs =
    [
        ("SetHeaderName", "SetHeaderValue"),
        ("HeaderContainsMessageHeader", "HeaderContainsWords"),
        ("ExceptIfHeaderContainsMessageHeader", "ExceptIfHeaderContainsWords"),
        ("HeaderMatchesMessageHeader", "HeaderMatchesPatterns"),
        ("ExceptIfHeaderMatchesMessageHeader", "ExceptIfHeaderMatchesPatterns"),
    ];

    /// <summary>The parameter <paramref name="name"/> must be given with, if any.</summary>
    public static string? PairedWith(string name) =>
        RuleParameterPairs.Where(p => p.First.Equals(name, StringComparison.OrdinalIgnoreCase) || p.Second.Equals(name, StringComparison.OrdinalIgnoreCase))
            .Select(p => p.First.Equals(name, StringComparison.OrdinalIgnoreCase) ? p.Second : p.First)
            .FirstOrDefault();

    public IReadOnlyList<string> Validate(CmdletInvocation invocation)
    {
        var problems = new List<string>();
        if (!_cmdlets.TryGetValue(invocation.Cmdlet, out var parameters))
        {
            problems.Add($"{invocation.Cmdlet}: not a cmdlet in the reference");
            return problems;
        }
        var connectorType = invocation.Get("ConnectorType") as string;
        foreach (var (name, value) in invocation.Parameters)
            problems.AddRange(ValidateParameter(invocation.Cmdlet, name, value, connectorType));
        foreach (var p in parameters.Values.Where(p => p.Required))
        {
            if (!invocation.Has(p.Name))
                problems.Add($"{invocation.Cmdlet}: mandatory parameter -{p.Name} is missing");
        }
        if (invocation.Cmdlet.EndsWith("TenantAllowBlockListSpoofItems", StringComparison.OrdinalIgnoreCase)
            && invocation.Get("SpoofedUser") is string user && invocation.Get("SendingInfrastructure") is string infrastructure
            && user.Contains('*') && infrastructure.Contains('*'))
            problems.Add($"{invocation.Cmdlet}: a wildcard may be on one side only, not in both -SpoofedUser and -SendingInfrastructure");
        if (invocation.Cmdlet.EndsWith("-TransportRule", StringComparison.OrdinalIgnoreCase))
        {
            foreach (var (first, second) in RuleParameterPairs.Where(p => invocation.Has(p.First) != invocation.Has(p.Second)))
                problems.Add($"{invocation.Cmdlet}: -{(invocation.Has(first) ? first : second)} needs -{(invocation.Has(first) ? second : first)} in the same call");
        }
        return problems;
    }

    /// <summary>The problems of one parameter and its value (for calls seen one parameter at a time, as in a script).</summary>
    /// <param name="cmdlet">The cmdlet.</param>
    /// <param name="name">The parameter.</param>
    /// <param name="value">Its value.</param>
    /// <param name="connectorType">The connector type the call is for, when it is a connector's.</param>
    /// <param name="checkValue">False when the value is only known at run time (a variable).</param>
    public IReadOnlyList<string> ValidateParameter(string cmdlet, string name, object? value, string? connectorType = null, bool checkValue = true)
    {
        var problems = new List<string>();
        var where = $"{cmdlet} -{name}";
        if (!_cmdlets.TryGetValue(cmdlet, out var parameters))
        {
            problems.Add($"{cmdlet}: not a cmdlet in the reference");
            return problems;
        }
        if (!parameters.TryGetValue(name, out var p))
        {
            problems.Add($"{where}: no such parameter");
            return problems;
        }
        if (!p.Online)
            problems.Add($"{where}: does not apply to Exchange Online");
        if (p.ReservedInternal)
            problems.Add($"{where}: reserved for internal Microsoft use");
        if (p.Deprecated)
            problems.Add($"{where}: deprecated");
        if (connectorType is not null && !ConnectorTypeExceptions.Contains($"{cmdlet}:{p.Name}"))
        {
            if (p.PartnerTypeOnly && !connectorType.Equals("Partner", StringComparison.OrdinalIgnoreCase))
                problems.Add($"{where}: takes effect only on Partner connectors, not {connectorType}");
            if (p.OnPremisesTypeOnly && !connectorType.Equals("OnPremises", StringComparison.OrdinalIgnoreCase))
                problems.Add($"{where}: takes effect only on OnPremises connectors, not {connectorType}");
        }
        if (checkValue)
            problems.AddRange(CheckValue(where, p, value));
        return problems;
    }

    private static IEnumerable<string> CheckValue(string where, CmdletParameter p, object? value)
    {
        var nullable = p.Values?.Contains("$null") == true;
        if (value is null)
        {
            if (p.Required)
                yield return $"{where}: is mandatory and cannot be $null";
            else if (p.Type is "Boolean" or "SwitchParameter" && !nullable)
                yield return $"{where}: a Boolean cannot be $null";
            yield break;
        }
        switch (p.Type)
        {
            case "Boolean" or "SwitchParameter":
                if (value is not bool)
                    yield return $"{where}: '{CmdletInvocation.Display(value)}' is not a Boolean";
                yield break;
            case "Int32":
                if (value is not int i)
                    yield return $"{where}: '{CmdletInvocation.Display(value)}' is not an integer";
                else if (p.Name == "Priority" && i < 0)
                    yield return $"{where}: {i} is below 0";
                yield break;
            case "SclValue":
                if (value is not int scl || scl < -1 || scl > 9)
                    yield return $"{where}: '{CmdletInvocation.Display(value)}' is not -1 or 0..9";
                yield break;
        }
        IReadOnlyList<string> items;
        if (ListTypes.Contains(p.Type))
        {
            if (value is ExoHashtable table)
            {
                if (p.Type != "MultiValuedProperty")
                    yield return $"{where}: a {p.Type} takes no @{{Add=…}} hashtable";
                items = [.. table.Add, .. table.Remove];
            }
            else if (value is IReadOnlyList<string> list)
            {
                items = list;
            }
            else if (value is string single)
            {
                items = [single];
            }
            else
            {
                yield return $"{where}: '{CmdletInvocation.Display(value)}' is not a list of strings";
                yield break;
            }
        }
        else if (value is string text)
        {
            items = [text];
        }
        else
        {
            yield return $"{where}: '{CmdletInvocation.Display(value)}' is not a {p.Type}";
            yield break;
        }
        foreach (var item in items)
        {
            if (p.Values is { } allowed && !Allowed(allowed, item))
                yield return $"{where}: '{item}' is not one of {string.Join(", ", allowed.Where(a => a != "$null"))}";
            if (p.ValuesOnPremOnly.Contains(item, StringComparer.OrdinalIgnoreCase))
                yield return $"{where}: '{item}' is accepted only on-premises";
            if (FormatProblem(p.Name, item) is { } problem)
                yield return $"{where}: '{item}' {problem}";
        }
    }

    private static bool Allowed(IReadOnlyList<string> allowed, string value)
    {
        foreach (var a in allowed)
        {
            if (a.Equals(value, StringComparison.OrdinalIgnoreCase))
                return true;
            // "<TenantId>\Default": a placeholder stands for one GUID.
            if (a.StartsWith("<TenantId>\\", StringComparison.Ordinal))
            {
                var slash = value.IndexOf('\\', StringComparison.Ordinal);
                if (slash > 0 && Guid.TryParse(value[..slash], out _) && value[(slash + 1)..].Equals(a[11..], StringComparison.OrdinalIgnoreCase))
                    return true;
            }
        }
        return false;
    }

    /// <summary>The documented value formats (exo-mapping.md): null when <paramref name="value"/> is acceptable.</summary>
    internal static string? FormatProblem(string parameter, string value) => parameter switch
    {
        "SenderIPAddresses" => IpFormat.IsIPv4SingleOrCidr(value, 24) ? null : "is not an IPv4 address or an IPv4 CIDR range /24 to /32 (IPv6 and a-b ranges are not accepted)",
        "IPAllowList" or "IPBlockList" => IpFormat.IsIPv4SingleOrCidr(value, 24) || IpFormat.IsIPv4Range(value, 256) ? null : "is not an IPv4 address, an a-b range of at most 256 addresses or a CIDR range /24 to /32",
        "SenderIpRanges" or "ExceptIfSenderIpRanges" => IpFormat.IsIPv4SingleOrCidr(value, 0) || IpFormat.IsIPv4Range(value, int.MaxValue) ? null : "is not an IPv4 address, range or CIDR range",
        "EFSkipIPs" => IpFormat.IsSingleOrCidr(value) || IpFormat.IsRange(value) ? null : "is not an IP address, range or CIDR range",
        "SendingInfrastructure" => value.Contains('/') || IPAddress.TryParse(value, out _)
            ? (IpFormat.IsSpoofInfrastructure(value) ? null : "is not written <IPv4 address>/24 (the only form an IP-based spoof entry takes)")
            : null,
        "TlsSenderCertificateName" or "TlsDomain" => value.LastIndexOf('*') > 0 ? "has a wildcard that is not the leading label" : null,
        _ => null,
    };

    private static bool Flag(JsonElement element, string name) =>
        element.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.True;
}

/// <summary>The address forms Exchange Online's IP lists accept.</summary>
public static class IpFormat
{
    public static bool IsIPv4(string value) =>
        IPAddress.TryParse(value, out var address) && address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork
        && value.Count(c => c == '.') == 3;

    /// <summary>A single IPv4 address, or a CIDR range whose prefix is at least <paramref name="minimumPrefix"/>.</summary>
    public static bool IsIPv4SingleOrCidr(string value, int minimumPrefix)
    {
        var slash = value.IndexOf('/', StringComparison.Ordinal);
        if (slash < 0)
            return IsIPv4(value);
        return IsIPv4(value[..slash])
            && int.TryParse(value[(slash + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out var prefix)
            && prefix >= minimumPrefix && prefix <= 32;
    }

    public static bool IsIPv4Range(string value, long maximumAddresses)
    {
        var dash = value.IndexOf('-', StringComparison.Ordinal);
        if (dash < 0 || !IsIPv4(value[..dash]) || !IsIPv4(value[(dash + 1)..]))
            return false;
        var first = ToNumber(IPAddress.Parse(value[..dash]));
        var last = ToNumber(IPAddress.Parse(value[(dash + 1)..]));
        return last >= first && last - first + 1 <= maximumAddresses;
    }

    public static bool IsSingleOrCidr(string value)
    {
        var slash = value.IndexOf('/', StringComparison.Ordinal);
        if (slash < 0)
            return IPAddress.TryParse(value, out _) && (value.Contains(':') || IsIPv4(value));
        if (!IPAddress.TryParse(value[..slash], out var address))
            return false;
        var max = address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork ? 32 : 128;
        return int.TryParse(value[(slash + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out var prefix) && prefix <= max;
    }

    public static bool IsRange(string value)
    {
        var dash = value.IndexOf('-', StringComparison.Ordinal);
        return dash > 0 && IPAddress.TryParse(value[..dash], out var a) && IPAddress.TryParse(value[(dash + 1)..], out var b)
            && a.AddressFamily == b.AddressFamily;
    }

    /// <summary>"a.b.c.d/24": the only IP form of a spoofed-sender entry's sending infrastructure.</summary>
    public static bool IsSpoofInfrastructure(string value) =>
        value.EndsWith("/24", StringComparison.Ordinal) && IsIPv4(value[..^3]);

    /// <summary>The /24 network of an IPv4 address, written the way spoof entries take it ("192.0.2.0/24").</summary>
    public static string Slash24(IPAddress address)
    {
        var bytes = address.GetAddressBytes();
        return $"{bytes[0]}.{bytes[1]}.{bytes[2]}.0/24";
    }

    private static long ToNumber(IPAddress address)
    {
        var b = address.GetAddressBytes();
        return ((long)b[0] << 24) | ((long)b[1] << 16) | ((long)b[2] << 8) | b[3];
    }
}
