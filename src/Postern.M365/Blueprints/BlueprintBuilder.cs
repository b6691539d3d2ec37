using Postern.Core;
using Postern.Core.Tenants;
using Postern.M365.Deployment;
using Postern.M365.Exo;

namespace Postern.M365.Blueprints;

/// <summary>What a blueprint is made for.</summary>
public sealed record BlueprintRequest
{
    public required Tenant Tenant { get; init; }

    /// <summary>The tenant's protected domains (postern domain add).</summary>
    public required IReadOnlyList<string> Domains { get; init; }

    public ProvisioningProfile Profile { get; init; } = ProvisioningProfile.Integrated;

    /// <summary>Outbound mode the rules are made for; null means the tenant's own setting.</summary>
    public OutboundMode? Outbound { get; init; }

    public ProvisioningScope Scope { get; init; } = ProvisioningScope.AllUsers;

    /// <summary>The relay key the rules put in the key header; null leaves <see cref="Blueprint.RelayKeyPlaceholder"/>.</summary>
    public string? RelayKey { get; init; }
}

/// <summary>
/// Turns a tenant, its region and a profile into the ordered items of DESIGN §3. Each item says
/// which seed requirement it meets; the comments here say why a value is what it is.
/// </summary>
public static class BlueprintBuilder
{
    public static Blueprint Build(BlueprintRequest request, M365Deployment deployment)
    {
        var tenant = request.Tenant;
        var region = deployment.For(tenant.Region);
        var profile = request.Profile;
        var outbound = request.Outbound ?? tenant.Outbound;
        var scope = request.Scope;
        var domains = request.Domains;
        var warnings = new List<string>();
        var advice = new List<string>();
        var names = new Names(deployment.ItemPrefix);
        var relayKey = request.RelayKey ?? Blueprint.RelayKeyPlaceholder;
        var loopTokens = new List<string> { tenant.LoopToken };
        if (tenant.PreviousLoopToken is { Length: > 0 } previous && previous != tenant.LoopToken)
            loopTokens.Add(previous);
        var egressV4 = region.EgressIPv4.Select(a => a.ToString()).ToArray();
        var egressAll = region.EgressIPs.Select(a => a.ToString()).ToArray();
        var relay = profile != ProvisioningProfile.Integrated;
        var outboundOn = outbound != OutboundMode.Off;

        if (relay && domains.Count == 0)
            throw new PosternException($"tenant '{tenant.Name}' has no protected domain; the {ProvisioningProfiles.Format(profile)} profile's rules name them (postern domain add {tenant.Name} DOMAIN)");
        if (domains.Count == 0)
            warnings.Add($"tenant '{tenant.Name}' has no protected domain: Postern refuses the mail the Redirect rule sends until one is added (postern domain add)");
        if (outbound != tenant.Outbound)
            warnings.Add($"outbound '{OutboundModes.Format(outbound)}' differs from the tenant's setting '{OutboundModes.Format(tenant.Outbound)}' in Postern; make them agree (postern tenant set {tenant.Name} --outbound {OutboundModes.Format(outbound)}) or Postern refuses or misroutes outbound mail");
        if (!tenant.RelayEnabled)
            warnings.Add($"the relay of tenant '{tenant.Name}' is not enabled, so it has no relay key yet and Postern refuses its mail (postern relay enable {tenant.Name})");
        if (profile == ProvisioningProfile.Relay && outbound == OutboundMode.ViaM365)
            warnings.Add("outbound 'via-m365' with the relay profile: Exchange Online relays to the Internet only mail arriving on an OnPremises (your organisation's server) connector, not a Partner one; use the relay-legacy profile or outbound 'direct'");
        if (profile == ProvisioningProfile.RelayLegacy && !tenant.CreatedBefore2023)
            warnings.Add($"the relay-legacy profile is meant for tenants created before 2023 (seed 004); tenant '{tenant.Name}' is not marked so (postern tenant add --created-before-2023)");
        if (region.SmartHosts.Count < 2)
            warnings.Add($"region '{region.Region}' has one smart host ({region.SmartHosts[0]}): when it is down, Exchange Online queues every tenant's mail for 24 hours and then returns it to the senders; list two or more in Postern:Regions:{region.Region}:SmartHosts");
        if (loopTokens.Count > 1)
            warnings.Add("the loop token is being rotated: the loop rules match the previous and the current token until the rotation ends");
        if (!scope.IsAllUsers && scope.Recipients.Count == 0)
            warnings.Add("the scope lists no recipient: no inbound mail goes through Postern");
        if (!scope.IsAllUsers && outboundOn && scope.Senders.Count == 0)
            warnings.Add("the scope lists no sender: no outbound mail goes through Postern");

        var items = new List<BlueprintItem>();
        var comment = $"Managed by {deployment.ItemPrefix} (postern m365 apply); 'postern m365 verify' reports changes made here.";

        // Connectors first: a rule can only route to a connector that exists.
        // Each tenant's OnPremises connector expects its own certificate name, never the region's wildcard: Exchange
        // Online attributes mail arriving on an OnPremises connector by the certificate's domain first (MC1226222).
        var certificateName = Core.Certificates.TenantCertificates.NameFor(tenant, deployment.ProductDomain);
        items.Add(relay ? RelayInboundConnector(names, profile, egressV4, certificateName, comment) : IntegratedInboundConnector(names, certificateName, egressAll, comment));
        items.Add(OutboundConnector(names, profile, region, comment));

        // Rules, top to bottom. Loop Check comes first in every profile: mail Postern hands back
        // carries the secret loop token, and the rule both ends rule processing for it (no second
        // trip) and removes the header, so the token never reaches a mailbox or the Internet.
        items.Add(LoopCheckRule(names, deployment, loopTokens, relay));
        var redirect = new List<KeyValuePair<string, object?>>
        {
            new("RouteMessageOutboundConnector", names.OutboundConnector),
            new("SetHeaderName", deployment.KeyHeader),
            new("SetHeaderValue", relayKey),
        };
        if (relay)
        {
            // Seed 004 steps 46 / seed 003 step 58: the outbound rule sits above the inbound one,
            // so internal mail (a sender inside the organisation) is routed once, as outbound.
            if (outboundOn && (scope.IsAllUsers || scope.Senders.Count > 0))
                items.Add(RelayOutboundRule(names, domains, scope, redirect, egressV4));
            if (scope.IsAllUsers || scope.Recipients.Count > 0)
                items.Add(RelayInboundRule(names, deployment, domains, scope, redirect, egressV4, loopTokens));
        }
        else
        {
            if (outboundOn && !scope.IsAllUsers && scope.Senders.Count > 0)
                items.Add(IntegratedOutboundRule(names, scope, redirect));
            if (scope.IsAllUsers || scope.Recipients.Count > 0)
                items.Add(RedirectRule(names, scope, outboundOn, redirect));
        }

        // Postern ARC-seals everything it returns (DESIGN §4.5) in every profile, so every profile trusts its sealer.
        items.Add(new ArcSealerItem(deployment.ArcSealerDomain, "seed 002: Trusted ARC sealers"));

        if (relay)
        {
            items.Add(new IpAllowListItem(egressV4, "seed 003 steps 28–29: connection filter policy, IP allow list"));
        }

        // Every profile: mail Postern hands back is a new message to Exchange Online and often fails its authentication
        // checks, so Microsoft's in-and-out guidance (defender-docs, mdo-integrate-security-service.md) asks for an
        // External and an Internal spoof allow entry for the service's sending infrastructure: the PTR domain of
        // Postern's egress addresses when it has one, else each address's /24 (the only subnet size allowed).
        foreach (var spoofType in new[] { "Internal", "External" })
        {
            var infrastructure = region.PtrDomain is { } ptr ? [ptr] : region.EgressIPv4.Select(IpFormat.Slash24).Distinct().ToArray();
            foreach (var sending in infrastructure)
                items.Add(new SpoofAllowItem(spoofType, "*", sending,
                    $"Microsoft's in-and-out guidance; seed 003 steps 30–33: spoofed senders, {spoofType.ToLowerInvariant()}, allow"));
        }

        if (relay)
        {
            items.Add(new RemoteDomainItem(
            [
                new("TNEFEnabled", false),
                new("CharacterSet", "utf-8"),
                new("NonMimeCharacterSet", "utf-8"),
                new("AllowedOOFType", "ExternalLegacy"),
            ], "seed 003 steps 21–25 / seed 004 steps 22–26: remote domain Default"));
        }

        if (domains.Count > 0)
            items.Add(new AcceptedDomainCheck(domains, "seed 003 step 26 / seed 004 step 27: accepted domains must be Authoritative"));

        if (outbound == OutboundMode.Direct && domains.Count > 0)
        {
            var mechanisms = string.Join(" ", region.EgressIPs.Select(a => (a.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork ? "ip4:" : "ip6:") + a));
            advice.Add($"SPF (seed 004 step 47): outbound mail leaves Postern directly, so add \"{mechanisms}\" to the SPF record of {string.Join(", ", domains)}, " +
                $"e.g. \"v=spf1 include:spf.protection.outlook.com {mechanisms} -all\".");
        }

        return new Blueprint
        {
            Tenant = tenant,
            Profile = profile,
            Outbound = outbound,
            Scope = scope,
            Region = region,
            Deployment = deployment,
            Domains = domains,
            Items = items,
            Warnings = warnings,
            Advice = advice,
            HasRelayKey = request.RelayKey is not null,
            LoopTokens = loopTokens,
            AllConnectorNames = [names.InboundConnector, names.OutboundConnector],
            AllRuleNames = [names.LoopCheck, names.OutboundRule, names.InboundRule, names.Redirect],
        };
    }

    /// <summary>Seeds 000–002 "From … Integrated": your organisation's mail server, identified by the tenant's certificate.</summary>
    private static ConnectorItem IntegratedInboundConnector(Names names, string certificateName, string[] egress, string comment) =>
        new(ConnectorDirection.Inbound, names.InboundConnector,
            "Accepts the mail Postern hands back, identified by the tenant's own certificate from Postern",
            "seeds 000–002: From … Integrated; seed 002: enhanced filtering",
            [
                new("ConnectorType", "OnPremises"),
                // Mandatory on New-InboundConnector even for OnPremises connectors; '*' as in Microsoft's add-on example.
                new("SenderDomains", new[] { "*" }),
                new("TlsSenderCertificateName", certificateName),
                new("RequireTls", true),
                new("RestrictDomainsToCertificate", true),
                // Enhanced filtering skips Postern's hop, so Defender judges the original sender; IPv6 too (seed 002).
                new("EFSkipLastIP", false),
                new("EFSkipIPs", egress),
                new("Enabled", true),
            ], comment);

    /// <summary>Seed 003 steps 5–11 (Partner, sender IPs, TLS) / seed 004 steps 17–21 (your organisation's server, retain headers).</summary>
    private static ConnectorItem RelayInboundConnector(Names names, ProvisioningProfile profile, string[] egressV4, string certificateName, string comment)
    {
        var settings = new List<KeyValuePair<string, object?>>();
        if (profile == ProvisioningProfile.RelayLegacy)
        {
            // Seed 004 identified this OnPremises connector by Postern's IPs, which every tenant shares: the second
            // anti-pattern of MC1226222 (attribution may go to another tenant). It is identified by the tenant's own
            // certificate instead; SenderIPAddresses is cleared so a connector an earlier Postern made is repaired.
            settings.Add(new("ConnectorType", "OnPremises"));
            settings.Add(new("SenderDomains", new[] { "*" }));
            settings.Add(new("TlsSenderCertificateName", certificateName));
            settings.Add(new("RequireTls", true));
            settings.Add(new("RestrictDomainsToCertificate", true));
            settings.Add(new("CloudServicesMailEnabled", true));
        }
        else
        {
            settings.Add(new("ConnectorType", "Partner"));
            settings.Add(new("SenderDomains", new[] { "*" }));
            settings.Add(new("SenderIPAddresses", egressV4));
            // Seed 003 steps 8–9: IP identification and TLS, nothing more. RestrictDomainsToIPAddresses $true with
            // SenderDomains '*' is Microsoft's "Reject mail not routed through MX (third-party service)": with the MX
            // at Exchange Online it would refuse every message that did not come through Postern. Said as $false
            // (its default) so that a connector an earlier Postern made with $true is seen as drift and repaired.
            settings.Add(new("RestrictDomainsToIPAddresses", false));
            settings.Add(new("RequireTls", true));
        }
        settings.Add(new("Enabled", true));
        return new ConnectorItem(ConnectorDirection.Inbound, names.InboundConnector,
            profile == ProvisioningProfile.RelayLegacy
                ? "Accepts the mail Postern hands back, identified by the tenant's own certificate from Postern"
                // A Partner connector's mail is attributed like Internet mail, by its recipients: Postern's shared
                // IPs identify the partner without deciding the tenant, so the seed's IP identification stays.
                : "Accepts the mail Postern hands back, identified by Postern's IPv4 addresses",
            profile == ProvisioningProfile.RelayLegacy
                ? "seed 004 steps 17–21: receive connector, your organization's email server, retain internal headers"
                : "seed 003 steps 5–11: receive connector, partner organization, sender IPs, reject without TLS",
            settings, comment, mustBeEmpty: profile == ProvisioningProfile.RelayLegacy ? ["SenderIPAddresses"] : []);
    }

    /// <summary>Seeds 000–002 "To … Integrated", seed 003 steps 12–20, seed 004 steps 8–16: used only by Postern's rules.</summary>
    private static ConnectorItem OutboundConnector(Names names, ProvisioningProfile profile, RegionEndpoints region, string comment) =>
        new(ConnectorDirection.Outbound, names.OutboundConnector,
            "Carries the mail Postern's rules redirect to Postern's smart host, over TLS with Postern's certificate name checked",
            profile == ProvisioningProfile.RelayLegacy
                ? "seed 004 steps 8–16: send connector to your organization's email server, rule-scoped, smart host, TLS"
                : "seeds 000–002: To … Integrated; seed 003 steps 12–20: send connector",
            [
                // Seed 004 step 9 makes the legacy send connector "to your organization's email server".
                new("ConnectorType", profile == ProvisioningProfile.RelayLegacy ? "OnPremises" : "Partner"),
                new("IsTransportRuleScoped", true),
                new("UseMXRecord", false),
                new("SmartHosts", region.SmartHosts.ToArray()),
                new("TlsSettings", "DomainValidation"),
                new("TlsDomain", region.CertificateSubject),
                new("Enabled", true),
            ], comment, mustBeEmpty: ["RecipientDomains"]);

    private static TransportRuleItem LoopCheckRule(Names names, M365Deployment deployment, IReadOnlyList<string> tokens, bool relay) =>
        new(names.LoopCheck,
            "Mail Postern already handled carries the tenant's secret loop token: remove the header and apply no further rule",
            relay ? "seed 003 steps 50–52: loop avoidance, in a rule of its own that also removes the token" : "seeds 000–002: … Integrated Loop Check",
            [
                new("HeaderContainsMessageHeader", deployment.LoopHeader),
                new("HeaderContainsWords", tokens.ToArray()),
                new("RemoveHeader", deployment.LoopHeader),
                new("StopRuleProcessing", true),
                new("Mode", "Enforce"),
            ],
            "Postern: mail carrying this tenant's loop token already passed through Postern.");

    private static TransportRuleItem RedirectRule(Names names, ProvisioningScope scope, bool outboundOn, List<KeyValuePair<string, object?>> redirect)
    {
        var settings = new List<KeyValuePair<string, object?>>();
        if (!scope.IsAllUsers)
            settings.Add(new("SentTo", scope.Recipients.ToArray()));
        else if (!outboundOn)
            // With outbound off Postern refuses mail to the Internet, so only mail from outside is sent to it.
            settings.Add(new("FromScope", "NotInOrganization"));
        settings.AddRange(redirect);
        settings.Add(new("Mode", "Enforce"));
        return new TransportRuleItem(names.Redirect,
            scope.IsAllUsers && outboundOn ? "Routes all mail to Postern for scanning, with the relay key" : "Routes mail to Postern for scanning, with the relay key",
            "seeds 000–002: … Integrated Redirect", settings,
            "Postern: routes mail through Postern for scanning.");
    }

    private static TransportRuleItem IntegratedOutboundRule(Names names, ProvisioningScope scope, List<KeyValuePair<string, object?>> redirect) =>
        new(names.OutboundRule, "Routes the listed senders' mail to Postern (limited scope)",
            "seed 004 step 48: limited scope deployment",
            [
                new("From", scope.Senders.ToArray()),
                new("FromScope", "InOrganization"),
                .. redirect,
                new("StopRuleProcessing", true),
                new("Mode", "Enforce"),
            ],
            "Postern: routes the listed senders' mail through Postern.");

    /// <summary>Seed 004 steps 28–44.</summary>
    private static TransportRuleItem RelayOutboundRule(Names names, IReadOnlyList<string> domains, ProvisioningScope scope,
        List<KeyValuePair<string, object?>> redirect, string[] egressV4)
    {
        var settings = new List<KeyValuePair<string, object?>>
        {
            new("SenderDomainIs", domains.ToArray()),
            new("FromScope", "InOrganization"),
        };
        if (!scope.IsAllUsers)
            settings.Add(new("From", scope.Senders.ToArray()));
        settings.AddRange(redirect);
        settings.AddRange(RuleSettings(egressV4));
        return new TransportRuleItem(names.OutboundRule, "Routes the organisation's outgoing mail to Postern, with the relay key",
            "seed 004 steps 28–46: outbound rule" + (scope.IsAllUsers ? "" : "; step 48: limited scope"), settings,
            "Postern: routes outgoing mail through Postern.");
    }

    /// <summary>Seed 003 steps 34–58.</summary>
    private static TransportRuleItem RelayInboundRule(Names names, M365Deployment deployment, IReadOnlyList<string> domains, ProvisioningScope scope,
        List<KeyValuePair<string, object?>> redirect, string[] egressV4, IReadOnlyList<string> tokens)
    {
        var settings = new List<KeyValuePair<string, object?>>
        {
            new("RecipientDomainIs", domains.ToArray()),
            new("SentToScope", "InOrganization"),
        };
        if (!scope.IsAllUsers)
            settings.Add(new("SentTo", scope.Recipients.ToArray()));
        settings.AddRange(redirect);
        settings.Add(new("RouteMessageOutboundRequireTls", true));
        settings.Add(new("SetSCL", -1));
        // Loop avoidance: the processed-token header (the secret loop token, never a fixed word) or a Postern address.
        settings.Add(new("ExceptIfHeaderContainsMessageHeader", deployment.LoopHeader));
        settings.Add(new("ExceptIfHeaderContainsWords", tokens.ToArray()));
        settings.AddRange(RuleSettings(egressV4));
        return new TransportRuleItem(names.InboundRule, "Routes mail for the protected domains to Postern, with the relay key, bypassing spam filtering",
            "seed 003 steps 34–57: inbound rule" + (scope.IsAllUsers ? "" : "; seed 004 step 48: limited scope"), settings,
            "Postern: routes incoming mail through Postern.");
    }

    /// <summary>Seed 003 step 56 / seed 004 step 44, and the sender-IP exception of steps 53–54 / 41–42.</summary>
    private static IEnumerable<KeyValuePair<string, object?>> RuleSettings(string[] egressV4) =>
    [
        new("ExceptIfSenderIpRanges", egressV4),
        new("SetAuditSeverity", "High"),
        new("StopRuleProcessing", true),
        new("RuleErrorAction", "Defer"),
        new("SenderAddressLocation", "HeaderOrEnvelope"),
        new("Mode", "Enforce"),
    ];

    private sealed record Names(string Prefix)
    {
        public string InboundConnector => $"From {Prefix}";
        public string OutboundConnector => $"To {Prefix}";
        public string LoopCheck => $"{Prefix} Loop Check";
        public string Redirect => $"{Prefix} Redirect";
        public string OutboundRule => $"{Prefix} Outbound";
        public string InboundRule => $"{Prefix} Inbound";
    }
}
