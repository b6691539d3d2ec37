using Postern.Core.Tenants;
using Postern.M365.Blueprints;

namespace Postern.M365.Tests;

/// <summary>Each seed document's items, point by point, in the blueprints made from them.</summary>
public sealed class SeedRequirementTests
{
    private static ConnectorItem Inbound(Blueprint b) => b.Connectors.Single(c => c.Direction == ConnectorDirection.Inbound);

    private static ConnectorItem Outbound(Blueprint b) => b.Connectors.Single(c => c.Direction == ConnectorDirection.Outbound);

    private static TransportRuleItem Rule(Blueprint b, string name) => b.Rules.Single(r => r.Name == name);

    private static IReadOnlyList<string> List(object? value) => Assert.IsAssignableFrom<IReadOnlyList<string>>(value);

    [Theory]
    [InlineData("au")]
    [InlineData("eu")]
    [InlineData("us")]
    public void Seeds_000_to_002_integrated_connectors_per_region(string region)
    {
        var b = TestTenants.Blueprint(ProvisioningProfile.Integrated, region: region);

        // "From … Integrated": your organization's mail server → Office 365, identified by the certificate *.[region].…
        var inbound = Inbound(b);
        Assert.Equal("From Postern", inbound.Name);
        Assert.Equal("OnPremises", inbound.Setting("ConnectorType"));
        // Not the region's wildcard: the tenant's own name, which Exchange Online attributes the mail by (MC1226222).
        Assert.Equal($"{TestTenants.ContosoId}.{region}.postern.example", inbound.Setting("TlsSenderCertificateName"));
        Assert.Equal(["*"], List(inbound.Setting("SenderDomains")));
        Assert.Equal(true, inbound.Setting("RequireTls"));
        Assert.Equal(true, inbound.Setting("Enabled"));

        // "To … Integrated": Office 365 → partner, only by transport rule, regional smart host, always TLS, trusted CA + subject name.
        var outbound = Outbound(b);
        Assert.Equal("To Postern", outbound.Name);
        Assert.Equal("Partner", outbound.Setting("ConnectorType"));
        Assert.Equal(true, outbound.Setting("IsTransportRuleScoped"));
        Assert.Equal(false, outbound.Setting("UseMXRecord"));
        Assert.Equal([$"m365-array-1.{region}.postern.example", $"m365-array-2.{region}.postern.example"], List(outbound.Setting("SmartHosts")));
        Assert.Equal("DomainValidation", outbound.Setting("TlsSettings"));
        Assert.Equal($"*.{region}.postern.example", outbound.Setting("TlsDomain"));
        Assert.Equal(true, outbound.Setting("Enabled"));
    }

    [Fact]
    public void Seeds_000_to_002_integrated_rules_loop_check_above_redirect()
    {
        var b = TestTenants.Blueprint(ProvisioningProfile.Integrated);
        Assert.Equal(["Postern Loop Check", "Postern Redirect"], b.Rules.Select(r => r.Name));

        // Loop Check: the header includes the tenant's value → remove the header; stop processing.
        var loop = Rule(b, "Postern Loop Check");
        Assert.Equal("X-Postern-Loop", loop.Setting("HeaderContainsMessageHeader"));
        Assert.Equal([TestTenants.Contoso().LoopToken], List(loop.Setting("HeaderContainsWords")));
        Assert.Equal("X-Postern-Loop", loop.Setting("RemoveHeader"));
        Assert.Equal(true, loop.Setting("StopRuleProcessing"));

        // Redirect: apply to all messages (no condition), route through the "To" connector, with the relay key.
        var redirect = Rule(b, "Postern Redirect");
        Assert.Equal("To Postern", redirect.Setting("RouteMessageOutboundConnector"));
        Assert.Equal("X-Postern-Key", redirect.Setting("SetHeaderName"));
        Assert.Equal(TestTenants.RelayKey, redirect.Setting("SetHeaderValue"));
        var conditions = redirect.Settings.Select(s => s.Key).Where(k => Exo.CmdletReference.Default.Parameter("New-TransportRule", k)?.RulePart is "condition" or "exception");
        Assert.Empty(conditions);

        // Rules are created disabled; connectors enabled (checked above).
        Assert.All(b.Rules, r => Assert.Equal(false, r.Create(null).Get("Enabled")));
        Assert.All(b.Rules, r => Assert.False(r.Create(null).Has("Priority")));
    }

    [Fact]
    public void Seed_002_arc_sealer_and_enhanced_filtering_with_ipv6()
    {
        var b = TestTenants.Blueprint(ProvisioningProfile.Integrated);
        var arc = Assert.Single(b.Items.OfType<ArcSealerItem>());
        Assert.Equal("arc.postern.example", arc.Domain);
        // Set-ArcConfig replaces the list: the call carries the existing sealers too.
        Assert.Equal(["dkim.other.example", "arc.postern.example"], List(arc.Merge(["dkim.other.example"]).Get("ArcTrustedSealers")));

        var inbound = Inbound(b);
        Assert.Equal(false, inbound.Setting("EFSkipLastIP"));
        var skip = List(inbound.Setting("EFSkipIPs"));
        Assert.Contains("198.51.100.25", skip);
        Assert.Contains("2001:db8:0:e::25", skip);
    }

    [Fact]
    public void Seed_003_relay_receive_and_send_connectors()
    {
        var b = TestTenants.Blueprint(ProvisioningProfile.Relay);
        var receive = Inbound(b);
        Assert.Equal("Partner", receive.Setting("ConnectorType"));
        Assert.Equal(["198.51.100.25", "198.51.100.26"], List(receive.Setting("SenderIPAddresses")));
        // Steps 8–9 ask for IP identification and TLS only. RestrictDomainsToIPAddresses $true would be Microsoft's
        // "Reject mail not routed through MX (third-party service)": every message not from Postern refused.
        Assert.Equal(false, receive.Setting("RestrictDomainsToIPAddresses"));
        Assert.Equal(true, receive.Setting("RequireTls"));
        Assert.Equal(true, receive.Setting("Enabled"));

        var send = Outbound(b);
        Assert.Equal("Partner", send.Setting("ConnectorType"));
        Assert.Equal(true, send.Setting("IsTransportRuleScoped"));
        Assert.Equal(["m365-array-1.eu.postern.example", "m365-array-2.eu.postern.example"], List(send.Setting("SmartHosts")));
        Assert.Equal("DomainValidation", send.Setting("TlsSettings"));
        Assert.Equal("*.eu.postern.example", send.Setting("TlsDomain"));
    }

    [Fact]
    public void Seed_003_inbound_rule_conditions_actions_exceptions_and_settings()
    {
        var b = TestTenants.Blueprint(ProvisioningProfile.Relay);
        var rule = Rule(b, "Postern Inbound");
        // Steps 36–40: the recipient domain is …, the recipient is inside the organisation.
        Assert.Equal(TestTenants.Domains, List(rule.Setting("RecipientDomainIs")));
        Assert.Equal("InOrganization", rule.Setting("SentToScope"));
        // Steps 41–49: redirect to the connector, set the key header, require TLS, bypass spam filtering.
        Assert.Equal("To Postern", rule.Setting("RouteMessageOutboundConnector"));
        Assert.Equal("X-Postern-Key", rule.Setting("SetHeaderName"));
        Assert.Equal(TestTenants.RelayKey, rule.Setting("SetHeaderValue"));
        Assert.Equal(true, rule.Setting("RouteMessageOutboundRequireTls"));
        Assert.Equal(-1, rule.Setting("SetSCL"));
        // Steps 50–54: except the processed header (the secret token, not "yes") or a Postern address.
        Assert.Equal("X-Postern-Loop", rule.Setting("ExceptIfHeaderContainsMessageHeader"));
        Assert.Equal([TestTenants.Contoso().LoopToken], List(rule.Setting("ExceptIfHeaderContainsWords")));
        Assert.Equal(["198.51.100.25", "198.51.100.26"], List(rule.Setting("ExceptIfSenderIpRanges")));
        // Step 56: severity High, stop processing, defer on error, header and envelope.
        Assert.Equal("High", rule.Setting("SetAuditSeverity"));
        Assert.Equal(true, rule.Setting("StopRuleProcessing"));
        Assert.Equal("Defer", rule.Setting("RuleErrorAction"));
        Assert.Equal("HeaderOrEnvelope", rule.Setting("SenderAddressLocation"));
        Assert.Equal(false, rule.Create(null).Get("Enabled"));
    }

    [Fact]
    public void Seed_003_defender_remote_domain_and_accepted_domain_items()
    {
        var b = TestTenants.Blueprint(ProvisioningProfile.Relay);
        // Steps 28–29: connection filter IP allow list (IPv4 only).
        Assert.Equal(["198.51.100.25", "198.51.100.26"], Assert.Single(b.Items.OfType<IpAllowListItem>()).Addresses);
        // Steps 30–33: spoofed senders "*, ip" allowed, internal and external; the cmdlet takes the IP as a /24.
        var spoof = b.Items.OfType<SpoofAllowItem>().ToArray();
        Assert.Equal(["Internal", "External"], spoof.Select(s => s.SpoofType));
        Assert.All(spoof, s => Assert.Equal("*", s.SpoofedUser));
        Assert.All(spoof, s => Assert.Equal("198.51.100.0/24", s.SendingInfrastructure));
        Assert.All(spoof, s => Assert.Equal("Allow", s.Create().Get("Action")));
        // Steps 21–25: rich text never, UTF-8 MIME and non-MIME, external and legacy out-of-office.
        var remote = Assert.Single(b.Items.OfType<RemoteDomainItem>());
        Assert.Equal("Default", remote.Name);
        Assert.Equal([("TNEFEnabled", (object?)false), ("CharacterSet", "utf-8"), ("NonMimeCharacterSet", "utf-8"), ("AllowedOOFType", "ExternalLegacy")],
            remote.Settings.Select(s => (s.Key, s.Value)));
        // Step 26: the accepted domains are checked, not changed.
        Assert.Equal(TestTenants.Domains, Assert.Single(b.Items.OfType<AcceptedDomainCheck>()).Domains);
        Assert.Empty(Assert.Single(b.Items.OfType<AcceptedDomainCheck>()).CreateInvocations());
    }

    [Fact]
    public void Seed_004_legacy_connectors_and_outbound_rule_above_inbound()
    {
        var b = TestTenants.Blueprint(ProvisioningProfile.RelayLegacy);
        // Steps 17–20: "Your organization's email server", IP addresses, retain internal Exchange headers.
        var receive = Inbound(b);
        Assert.Equal("OnPremises", receive.Setting("ConnectorType"));
        Assert.Equal(true, receive.Setting("CloudServicesMailEnabled"));
        // Seed 004 named Postern's IPs, shared by every tenant: an OnPremises connector keyed on them is MC1226222's
        // anti-pattern, so it is identified by the tenant's own certificate, and a stale IP list is cleared.
        Assert.Null(receive.Setting("SenderIPAddresses"));
        Assert.Contains("SenderIPAddresses", receive.MustBeEmpty);
        Assert.Equal($"{TestTenants.ContosoId}.eu.postern.example", receive.Setting("TlsSenderCertificateName"));
        Assert.Equal(true, receive.Setting("RestrictDomainsToCertificate"));
        Assert.Equal(true, receive.Setting("RequireTls"));
        // Steps 8–16: send connector from Office 365 to your organization's email server, rule-scoped, smart host, TLS.
        var send = Outbound(b);
        Assert.Equal("OnPremises", send.Setting("ConnectorType"));
        Assert.Equal(true, send.Setting("IsTransportRuleScoped"));
        Assert.Equal("DomainValidation", send.Setting("TlsSettings"));

        // Steps 28–45: sender domain is …, sender inside the organisation, redirect, key header, except Postern's IPs, rule settings.
        var rule = Rule(b, "Postern Outbound");
        Assert.Equal(TestTenants.Domains, List(rule.Setting("SenderDomainIs")));
        Assert.Equal("InOrganization", rule.Setting("FromScope"));
        Assert.Equal("To Postern", rule.Setting("RouteMessageOutboundConnector"));
        Assert.Equal("X-Postern-Key", rule.Setting("SetHeaderName"));
        Assert.Equal(["198.51.100.25", "198.51.100.26"], List(rule.Setting("ExceptIfSenderIpRanges")));
        Assert.Equal("High", rule.Setting("SetAuditSeverity"));
        Assert.Equal(true, rule.Setting("StopRuleProcessing"));
        Assert.Equal("Defer", rule.Setting("RuleErrorAction"));
        Assert.Equal("HeaderOrEnvelope", rule.Setting("SenderAddressLocation"));
        // Step 46 / seed 003 step 58: the outbound rule comes before the inbound one; Loop Check before both.
        Assert.Equal(["Postern Loop Check", "Postern Outbound", "Postern Inbound"], b.Rules.Select(r => r.Name));
    }

    [Fact]
    public void Seed_004_spf_advice_names_ipv4_and_ipv6_only_when_postern_sends_directly()
    {
        var direct = TestTenants.Blueprint(ProvisioningProfile.RelayLegacy, OutboundMode.Direct);
        var advice = Assert.Single(direct.Advice);
        Assert.Contains("ip4:198.51.100.25 ip4:198.51.100.26 ip6:2001:db8:0:e::25", advice, StringComparison.Ordinal);
        Assert.Contains("contoso.com, contoso.net", advice, StringComparison.Ordinal);
        Assert.Empty(TestTenants.Blueprint(ProvisioningProfile.RelayLegacy, OutboundMode.ViaM365).Advice);
        Assert.Empty(TestTenants.Blueprint(ProvisioningProfile.Relay, OutboundMode.Off).Advice);
    }

    [Fact]
    public void Seed_004_limited_scope_limits_the_inbound_rule_to_recipients_and_the_outbound_rule_to_senders()
    {
        var scope = ProvisioningScope.Parse("alice@contoso.com\nrecipient: bob@contoso.com\nsender: carol@contoso.com # pilot\n", "pilot.txt");
        var relay = TestTenants.Blueprint(ProvisioningProfile.Relay, scope: scope);
        Assert.Equal(["alice@contoso.com", "bob@contoso.com"], List(Rule(relay, "Postern Inbound").Setting("SentTo")));
        Assert.Equal(["alice@contoso.com", "carol@contoso.com"], List(Rule(relay, "Postern Outbound").Setting("From")));

        var integrated = TestTenants.Blueprint(ProvisioningProfile.Integrated, scope: scope);
        Assert.Equal(["Postern Loop Check", "Postern Outbound", "Postern Redirect"], integrated.Rules.Select(r => r.Name));
        Assert.Equal(["alice@contoso.com", "bob@contoso.com"], List(Rule(integrated, "Postern Redirect").Setting("SentTo")));
        Assert.Equal(["alice@contoso.com", "carol@contoso.com"], List(Rule(integrated, "Postern Outbound").Setting("From")));

        var sendersOnly = TestTenants.Blueprint(ProvisioningProfile.Relay, scope: ProvisioningScope.Parse("sender: carol@contoso.com", "s"));
        Assert.Equal(["Postern Loop Check", "Postern Outbound"], sendersOnly.Rules.Select(r => r.Name));
        Assert.Contains(sendersOnly.Warnings, w => w.Contains("no recipient", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("alice", "line 1: 'alice' is not an email address")]
    [InlineData("\n\nwho: a@contoso.com", "line 3: 'who' is not 'recipient' or 'sender'")]
    [InlineData("# nobody\n", "lists no address")]
    public void A_bad_scope_file_is_refused_naming_the_line(string text, string message)
    {
        var error = Assert.Throws<Core.PosternException>(() => ProvisioningScope.Parse(text, "pilot.txt"));
        Assert.Contains(message, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Outbound_off_has_no_outbound_rule_and_the_integrated_redirect_takes_only_mail_from_outside()
    {
        var relay = TestTenants.Blueprint(ProvisioningProfile.Relay, OutboundMode.Off);
        Assert.Equal(["Postern Loop Check", "Postern Inbound"], relay.Rules.Select(r => r.Name));
        var integrated = TestTenants.Blueprint(ProvisioningProfile.Integrated, OutboundMode.Off);
        Assert.Equal("NotInOrganization", Rule(integrated, "Postern Redirect").Setting("FromScope"));
        Assert.Null(Rule(TestTenants.Blueprint(ProvisioningProfile.Integrated, OutboundMode.Direct), "Postern Redirect").Setting("FromScope"));
    }

    [Fact]
    public void The_loop_check_matches_the_tenants_secret_token_and_both_tokens_during_a_rotation()
    {
        var tenant = TestTenants.Contoso();
        var b = TestTenants.Blueprint(ProvisioningProfile.Relay);
        var words = List(Rule(b, "Postern Loop Check").Setting("HeaderContainsWords"));
        Assert.Equal([tenant.LoopToken], words);
        Assert.DoesNotContain(tenant.Id.ToString(), words);
        Assert.DoesNotContain("yes", words);

        var other = TestTenants.Blueprint(ProvisioningProfile.Relay, tenant: tenant with { LoopToken = LoopToken.Generate() });
        Assert.NotEqual(words, List(Rule(other, "Postern Loop Check").Setting("HeaderContainsWords")));

        var rotating = TestTenants.Blueprint(ProvisioningProfile.Relay, tenant: tenant with { LoopToken = "aaaa0000aaaa0000aaaa0000aaaa0000", PreviousLoopToken = tenant.LoopToken });
        Assert.Equal(["aaaa0000aaaa0000aaaa0000aaaa0000", tenant.LoopToken], List(Rule(rotating, "Postern Loop Check").Setting("HeaderContainsWords")));
        Assert.Equal(["aaaa0000aaaa0000aaaa0000aaaa0000", tenant.LoopToken], List(Rule(rotating, "Postern Inbound").Setting("ExceptIfHeaderContainsWords")));
        Assert.Contains(rotating.Warnings, w => w.Contains("rotated", StringComparison.Ordinal));
    }

    [Fact]
    public void Without_the_relay_key_the_rules_carry_a_placeholder_never_a_guess()
    {
        var b = TestTenants.Blueprint(ProvisioningProfile.Integrated, relayKey: null);
        Assert.False(b.HasRelayKey);
        Assert.Equal(Blueprint.RelayKeyPlaceholder, Rule(b, "Postern Redirect").Setting("SetHeaderValue"));
    }

    [Fact]
    public void Warns_about_combinations_that_would_lose_or_bounce_mail()
    {
        Assert.Contains(TestTenants.Blueprint(ProvisioningProfile.Relay, OutboundMode.ViaM365).Warnings, w => w.Contains("relay-legacy", StringComparison.Ordinal));
        Assert.Contains(TestTenants.Blueprint(ProvisioningProfile.RelayLegacy).Warnings, w => w.Contains("created before 2023", StringComparison.Ordinal));
        var mismatch = BlueprintBuilder.Build(new BlueprintRequest
        {
            Tenant = TestTenants.Contoso(outbound: OutboundMode.Off),
            Domains = TestTenants.Domains,
            Outbound = OutboundMode.Direct,
        }, TestTenants.Deployment());
        Assert.Contains(mismatch.Warnings, w => w.Contains("differs from the tenant's setting 'off'", StringComparison.Ordinal));
        var error = Assert.Throws<Core.PosternException>(() => BlueprintBuilder.Build(new BlueprintRequest
        {
            Tenant = TestTenants.Contoso(),
            Domains = [],
            Profile = ProvisioningProfile.Relay,
        }, TestTenants.Deployment()));
        Assert.Contains("has no protected domain", error.Message, StringComparison.Ordinal);
    }
}
