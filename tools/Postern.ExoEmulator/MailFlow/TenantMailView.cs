using System.Net;

namespace Postern.ExoEmulator.MailFlow;

/// <summary>A copy of what one tenant's transport reads, taken per message (so an admin's change applies to the next one).</summary>
internal sealed record TenantMailView(EmulatedTenant Tenant, IReadOnlyList<ExoRecord> Inbound, IReadOnlyList<ExoRecord> Outbound,
    IReadOnlySet<string> AcceptedDomains, IReadOnlyList<string> IpAllowList)
{
    public string Name => Tenant.Organization;

    public bool Accepts(string domain) => AcceptedDomains.Contains(domain.ToLowerInvariant());

    /// <summary>The domain, or a parent of it, is an accepted domain (a certificate name in a domain the tenant has).</summary>
    public bool AcceptsWithin(string name)
    {
        var labels = name.ToLowerInvariant().TrimStart('*', '.');
        while (true)
        {
            if (AcceptedDomains.Contains(labels))
                return true;
            var dot = labels.IndexOf('.');
            if (dot < 0)
                return false;
            labels = labels[(dot + 1)..];
        }
    }

    public IEnumerable<ExoRecord> EnabledInbound(string type) => Inbound.Where(c =>
        c.Bool("Enabled") != false && type.Equals(c.Text("ConnectorType") ?? "Partner", StringComparison.OrdinalIgnoreCase));

    public ExoRecord? OutboundConnector(string name) => Outbound.FirstOrDefault(c => c.Matches(name));
}

/// <summary>How Exchange Online compares names and addresses on connectors (New-InboundConnector / New-OutboundConnector help).</summary>
internal static class ConnectorMatch
{
    /// <summary>
    /// TlsSenderCertificateName against the names on a certificate (subject CN and DNS SANs): equal, or a wildcard
    /// "*.contoso.com" that "indicates a domain and all subdomains".
    /// </summary>
    public static bool CertificateName(string? configured, IReadOnlyList<string> names)
    {
        if (string.IsNullOrEmpty(configured))
            return false;
        var want = configured.ToLowerInvariant();
        foreach (var name in names.Select(n => n.ToLowerInvariant()))
        {
            if (name == want)
                return true;
            if (want.StartsWith("*.", StringComparison.Ordinal))
            {
                var parent = want[2..];
                if (name == parent || name.EndsWith("." + parent, StringComparison.Ordinal))
                    return true;
            }
        }
        return false;
    }

    /// <summary>TlsDomain of an outbound connector against the smart host's certificate names (either side may be a wildcard).</summary>
    public static bool TlsDomain(string tlsDomain, IReadOnlyList<string> certificateNames)
    {
        var want = tlsDomain.ToLowerInvariant();
        foreach (var name in certificateNames.Select(n => n.ToLowerInvariant()))
        {
            if (name == want)
                return true;
            if (name.StartsWith("*.", StringComparison.Ordinal) && want.EndsWith(name[1..], StringComparison.Ordinal) && !want[..^(name.Length - 1)].Contains('.'))
                return true;
            if (want.StartsWith("*.", StringComparison.Ordinal) && name.EndsWith(want[1..], StringComparison.Ordinal))
                return true;
        }
        return false;
    }

    /// <summary>SenderIPAddresses: single IPv4 addresses, ranges a-b and CIDR /24 to /32.</summary>
    public static bool Address(IReadOnlyList<string> entries, IPAddress address)
    {
        if (address.IsIPv4MappedToIPv6)
            address = address.MapToIPv4();
        foreach (var entry in entries)
        {
            if (entry.Contains('/') && IPNetwork.TryParse(entry, out var network) && network.Contains(address))
                return true;
            if (IPAddress.TryParse(entry, out var single) && single.Equals(address))
                return true;
            if (entry.Split('-') is [var low, var high] && IPAddress.TryParse(low, out var a) && IPAddress.TryParse(high, out var b)
                && a.AddressFamily == address.AddressFamily
                && ((ReadOnlySpan<byte>)address.GetAddressBytes()).SequenceCompareTo(a.GetAddressBytes()) >= 0
                && ((ReadOnlySpan<byte>)address.GetAddressBytes()).SequenceCompareTo(b.GetAddressBytes()) <= 0)
                return true;
        }
        return false;
    }

    /// <summary>SenderDomains: "*" is every domain, "*.contoso.com" a domain and its subdomains; "smtp:*;1" as Exchange stores it.</summary>
    public static bool SenderDomain(IReadOnlyList<string> entries, string domain)
    {
        domain = domain.ToLowerInvariant();
        foreach (var raw in entries)
        {
            var entry = raw.ToLowerInvariant();
            if (entry.StartsWith("smtp:", StringComparison.Ordinal))
                entry = entry[5..];
            var semicolon = entry.IndexOf(';');
            if (semicolon >= 0)
                entry = entry[..semicolon];
            if (entry == "*" || entry == domain)
                return true;
            if (entry.StartsWith("*.", StringComparison.Ordinal) && (domain == entry[2..] || domain.EndsWith(entry[1..], StringComparison.Ordinal)))
                return true;
        }
        return false;
    }
}
