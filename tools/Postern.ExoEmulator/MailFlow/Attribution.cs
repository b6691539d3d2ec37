using System.Net;

namespace Postern.ExoEmulator.MailFlow;

/// <summary>A message on a tenant's OnPremises inbound connector, and which rule of attribution gave it to that tenant.</summary>
internal sealed record OnPremisesAttribution(TenantMailView Tenant, ExoRecord Connector, string How);

/// <summary>
/// Which tenant a message arriving on an OnPremises inbound connector belongs to, in Exchange Online's order
/// (message center MC1226222, February 2026): the domain of the TLS certificate the sender presented, then the
/// envelope MAIL FROM domain, then the RCPT TO domain. The certificate's domain counts only when it is one of the
/// tenant's accepted domains, and each step also needs the tenant to have an enabled OnPremises connector that the
/// connection matches (by certificate name, or by sender IP). Nothing here looks at the port the mail came to.
/// </summary>
internal static class Attribution
{
    public static OnPremisesAttribution? OnPremises(IReadOnlyList<TenantMailView> tenants, IReadOnlyList<string> certificateNames,
        IPAddress client, string mailFromDomain, string recipientDomain)
    {
        foreach (var name in certificateNames)
            foreach (var tenant in tenants.Where(t => t.AcceptsWithin(name)))
                if (Matching(tenant, certificateNames, null) is { } connector)
                    return new(tenant, connector, $"certificate domain {name}");
        if (mailFromDomain.Length > 0)
            foreach (var tenant in tenants.Where(t => t.Accepts(mailFromDomain)))
                if (Matching(tenant, certificateNames, client) is { } connector)
                    return new(tenant, connector, $"MAIL FROM domain {mailFromDomain}");
        foreach (var tenant in tenants.Where(t => t.Accepts(recipientDomain)))
            if (Matching(tenant, certificateNames, client) is { } connector)
                return new(tenant, connector, $"RCPT TO domain {recipientDomain}");
        return null;
    }

    /// <summary>The tenant's enabled OnPremises connector this connection matches: by certificate name, or (if given) by sender IP.</summary>
    private static ExoRecord? Matching(TenantMailView tenant, IReadOnlyList<string> certificateNames, IPAddress? client) =>
        tenant.EnabledInbound("OnPremises").FirstOrDefault(c =>
            ConnectorMatch.CertificateName(c.Text("TlsSenderCertificateName"), certificateNames)
            || (client is not null && ConnectorMatch.Address(c.List("SenderIPAddresses"), client)));

    /// <summary>
    /// The Partner connectors that apply to a message from <paramref name="mailFromDomain"/> arriving for a tenant:
    /// those whose SenderDomains include it and which the connection matches by IP or certificate ("partner connectors
    /// are pulled up by IP or certificate lookup"), or which name neither. A connector that restricts its domains to
    /// IPs or a certificate refuses the domain's mail from anywhere else (Microsoft's "Reject mail not routed
    /// through MX"). Returns the refusal, or null when the message may enter.
    /// </summary>
    public static string? PartnerRefusal(TenantMailView tenant, string mailFromDomain, IPAddress client, IReadOnlyList<string> certificateNames, bool tls)
    {
        foreach (var connector in tenant.EnabledInbound("Partner").Where(c => ConnectorMatch.SenderDomain(c.List("SenderDomains"), mailFromDomain)))
        {
            var ips = connector.List("SenderIPAddresses");
            var certificate = connector.Text("TlsSenderCertificateName");
            var ipMatch = ips.Count > 0 && ConnectorMatch.Address(ips, client);
            var certificateMatch = ConnectorMatch.CertificateName(certificate, certificateNames);
            if (connector.Bool("RestrictDomainsToIPAddresses") == true && !ipMatch)
                return $"550 5.7.51 TenantInboundAttribution; There is a partner connector configured that matched the message's recipient domain. " +
                    $"The partner connector requires that the sending server's IP address is in its SenderIPAddresses (connector '{connector.Name}')";
            if (connector.Bool("RestrictDomainsToCertificate") == true && !certificateMatch)
                return $"550 5.7.51 TenantInboundAttribution; There is a partner connector configured that matched the message's recipient domain. " +
                    $"The partner connector requires the sending server to present a certificate for {certificate} (connector '{connector.Name}')";
            var applies = ipMatch || certificateMatch || (ips.Count == 0 && string.IsNullOrEmpty(certificate));
            if (applies && connector.Bool("RequireTls") == true && !tls)
                return $"451 5.7.3 STARTTLS is required to send mail (connector '{connector.Name}')";
        }
        return null;
    }
}
