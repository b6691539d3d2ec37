using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;

namespace Postern.Core.Authentication;

/// <summary>A directive's qualifier: the result when its mechanism matches (RFC 7208 §4.6.2).</summary>
public enum SpfQualifier
{
    Pass,
    Fail,
    SoftFail,
    Neutral,
}

/// <summary>The eight SPF mechanisms (RFC 7208 §5).</summary>
public enum SpfMechanismKind
{
    All,
    Include,
    A,
    Mx,
    Ptr,
    Ip4,
    Ip6,
    Exists,
}

/// <summary>One directive of an SPF record: qualifier, mechanism and its arguments.</summary>
internal sealed record SpfDirective(
    string Text,
    SpfQualifier Qualifier,
    SpfMechanismKind Kind,
    SpfMacroString? DomainSpec,
    IPAddress? Network,
    int Ip4Prefix,
    int Ip6Prefix)
{
    /// <summary>include, a, mx, ptr and exists query DNS and count towards the limit of 10 (RFC 7208 §4.6.4).</summary>
    public bool CountsAsDnsLookup => Kind is SpfMechanismKind.Include or SpfMechanismKind.A or SpfMechanismKind.Mx
        or SpfMechanismKind.Ptr or SpfMechanismKind.Exists;
}

/// <summary>
/// A parsed "v=spf1" record. Everything is checked up front — unknown mechanisms, bad CIDR lengths,
/// malformed macros, repeated redirect= or exp= — because RFC 7208 §4.6 makes a syntax error anywhere in
/// the record a permerror, even after a mechanism that would have matched.
/// </summary>
internal sealed partial class SpfRecord
{
    private SpfRecord(IReadOnlyList<SpfDirective> directives, SpfMacroString? redirect, SpfMacroString? explanation)
    {
        Directives = directives;
        Redirect = redirect;
        Explanation = explanation;
    }

    public IReadOnlyList<SpfDirective> Directives { get; }

    /// <summary>redirect=domain-spec, used only when no directive matches (§6.1).</summary>
    public SpfMacroString? Redirect { get; }

    /// <summary>exp=domain-spec: where the explanation for a fail is published (§6.2).</summary>
    public SpfMacroString? Explanation { get; }

    /// <summary>True for the TXT strings that are SPF version 1 records: "v=spf1" alone or followed by a space (§4.5).</summary>
    public static bool IsSpfRecord(string text) =>
        text.StartsWith("v=spf1", StringComparison.OrdinalIgnoreCase) && (text.Length == 6 || text[6] == ' ');

    /// <summary>Parses <paramref name="text"/>; throws <see cref="SpfPermErrorException"/> naming the first problem.</summary>
    public static SpfRecord Parse(string text)
    {
        if (!IsSpfRecord(text))
            throw new SpfPermErrorException("not an SPF version 1 record");
        foreach (var c in text)
        {
            if (c < 0x20 || c > 0x7E)
                throw new SpfPermErrorException($"the record contains character 0x{(int)c:X2}; SPF records are printable 7-bit ASCII");
        }

        var directives = new List<SpfDirective>();
        SpfMacroString? redirect = null;
        SpfMacroString? explanation = null;
        foreach (var term in text[6..].Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            var modifier = ModifierPattern().Match(term);
            if (!modifier.Success)
            {
                directives.Add(ParseDirective(term));
                continue;
            }
            var name = modifier.Groups[1].Value.ToLowerInvariant();
            var value = term[(modifier.Length)..];
            switch (name)
            {
                case "redirect":
                    if (redirect is not null)
                        throw new SpfPermErrorException("redirect= appears more than once");
                    redirect = ParseDomainSpec(value, term);
                    break;
                case "exp":
                    if (explanation is not null)
                        throw new SpfPermErrorException("exp= appears more than once");
                    explanation = ParseDomainSpec(value, term);
                    break;
                default:
                    // Unknown modifiers are ignored, but must still be well-formed (§6).
                    SpfMacroString.Parse(value, explanation: false);
                    break;
            }
        }
        return new SpfRecord(directives, redirect, explanation);
    }

    private static SpfDirective ParseDirective(string term)
    {
        var qualifier = term[0] switch
        {
            '+' => SpfQualifier.Pass,
            '-' => SpfQualifier.Fail,
            '~' => SpfQualifier.SoftFail,
            '?' => SpfQualifier.Neutral,
            _ => (SpfQualifier?)null,
        };
        var body = qualifier is null ? term : term[1..];
        var nameEnd = body.IndexOfAny([':', '/']);
        var name = (nameEnd < 0 ? body : body[..nameEnd]).ToLowerInvariant();
        var rest = nameEnd < 0 ? "" : body[nameEnd..];
        var q = qualifier ?? SpfQualifier.Pass;

        switch (name)
        {
            case "all":
                if (rest.Length != 0)
                    throw new SpfPermErrorException($"'{term}': all takes no arguments");
                return new SpfDirective(term, q, SpfMechanismKind.All, null, null, 32, 128);

            case "include":
            case "exists":
                if (!rest.StartsWith(':'))
                    throw new SpfPermErrorException($"'{term}': {name} needs ':domain'");
                return new SpfDirective(term, q, name == "include" ? SpfMechanismKind.Include : SpfMechanismKind.Exists,
                    ParseDomainSpec(rest[1..], term), null, 32, 128);

            case "ptr":
                if (rest.Length != 0 && !rest.StartsWith(':'))
                    throw new SpfPermErrorException($"'{term}': ptr takes only ':domain'");
                return new SpfDirective(term, q, SpfMechanismKind.Ptr, rest.Length == 0 ? null : ParseDomainSpec(rest[1..], term), null, 32, 128);

            case "a":
            case "mx":
                {
                    var (remaining, ip4, ip6) = SplitDualCidr(rest, term);
                    if (remaining.Length != 0 && !remaining.StartsWith(':'))
                        throw new SpfPermErrorException($"'{term}': expected ':domain' or a CIDR length");
                    var domain = remaining.Length == 0 ? null : ParseDomainSpec(remaining[1..], term);
                    return new SpfDirective(term, q, name == "a" ? SpfMechanismKind.A : SpfMechanismKind.Mx, domain, null, ip4 ?? 32, ip6 ?? 128);
                }

            case "ip4":
            case "ip6":
                {
                    if (!rest.StartsWith(':'))
                        throw new SpfPermErrorException($"'{term}': {name} needs ':address'");
                    var value = rest[1..];
                    var v6 = name == "ip6";
                    int? prefix = null;
                    var slash = value.IndexOf('/');
                    if (slash >= 0)
                    {
                        prefix = ParseCidr(value[(slash + 1)..], v6 ? 128 : 32, term);
                        value = value[..slash];
                    }
                    var network = v6 ? ParseIp6(value, term) : ParseIp4(value, term);
                    return new SpfDirective(term, q, v6 ? SpfMechanismKind.Ip6 : SpfMechanismKind.Ip4, null, network,
                        v6 ? 32 : prefix ?? 32, v6 ? prefix ?? 128 : 128);
                }

            default:
                throw new SpfPermErrorException($"unknown mechanism '{term}'");
        }
    }

    private static (string Remaining, int? Ip4, int? Ip6) SplitDualCidr(string text, string term)
    {
        int? ip6 = null;
        int? ip4 = null;
        var dual = Ip6CidrSuffix().Match(text);
        if (dual.Success)
        {
            ip6 = ParseCidr(dual.Groups[1].Value, 128, term);
            text = text[..dual.Index];
        }
        var single = Ip4CidrSuffix().Match(text);
        if (single.Success)
        {
            ip4 = ParseCidr(single.Groups[1].Value, 32, term);
            text = text[..single.Index];
        }
        return (text, ip4, ip6);
    }

    private static int ParseCidr(string digits, int max, string term)
    {
        // ip4-cidr-length / ip6-cidr-length: decimal, no leading zeros (§5.6).
        if (digits.Length == 0 || digits.Length > 3 || !digits.All(char.IsAsciiDigit) || (digits.Length > 1 && digits[0] == '0'))
            throw new SpfPermErrorException($"'{term}': bad CIDR length '{digits}'");
        var value = int.Parse(digits, CultureInfo.InvariantCulture);
        if (value > max)
            throw new SpfPermErrorException($"'{term}': CIDR length {value} is over {max}");
        return value;
    }

    private static IPAddress ParseIp4(string text, string term)
    {
        // ip4-network = qnum "." qnum "." qnum "." qnum, qnum without leading zeros (§5.6).
        var parts = text.Split('.');
        if (parts.Length != 4 || parts.Any(p => p.Length is 0 or > 3 || !p.All(char.IsAsciiDigit) || (p.Length > 1 && p[0] == '0')
            || int.Parse(p, CultureInfo.InvariantCulture) > 255))
            throw new SpfPermErrorException($"'{term}': '{text}' is not an IPv4 address");
        return IPAddress.Parse(text);
    }

    private static IPAddress ParseIp6(string text, string term)
    {
        if (!text.Contains(':') || text.IndexOfAny(['%', '[', ']', '/']) >= 0
            || !IPAddress.TryParse(text, out var address) || address.AddressFamily != AddressFamily.InterNetworkV6)
            throw new SpfPermErrorException($"'{term}': '{text}' is not an IPv6 address");
        return address;
    }

    private static SpfMacroString ParseDomainSpec(string text, string term)
    {
        if (text.Length == 0)
            throw new SpfPermErrorException($"'{term}': empty domain");
        var spec = SpfMacroString.Parse(text, explanation: false);
        if (!SpfMacroString.HasDomainEnd(text))
            throw new SpfPermErrorException($"'{term}': '{text}' does not end in a top-level label or a macro");
        return spec;
    }

    // name = ALPHA *( ALPHA / DIGIT / "-" / "_" / "." ) (§4.6.1)
    [GeneratedRegex(@"^([A-Za-z][A-Za-z0-9\-_.]*)=")]
    private static partial Regex ModifierPattern();

    [GeneratedRegex(@"//([0-9]+)$")]
    private static partial Regex Ip6CidrSuffix();

    [GeneratedRegex(@"/([0-9]+)$")]
    private static partial Regex Ip4CidrSuffix();
}
