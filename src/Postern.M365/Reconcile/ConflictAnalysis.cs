using Postern.M365.Blueprints;
using Postern.M365.Exo;

namespace Postern.M365.Reconcile;

/// <summary>
/// Finds what around Postern's items bypasses or breaks the flow through Postern: enabled rules
/// evaluated before Postern's that stop processing, route or redirect elsewhere, set the SCL,
/// delete, reject, quarantine or hold mail, or touch Postern's headers; other gateways'
/// connectors; a missing ARC sealer; accepted domains that are not Authoritative.
/// </summary>
public static class ConflictAnalysis
{
    public static IReadOnlyList<Conflict> Find(Blueprint blueprint, TenantState state)
    {
        var conflicts = new List<Conflict>();
        var ours = blueprint.AllRuleNames.ToHashSet(StringComparer.OrdinalIgnoreCase);
        var rules = state.TransportRules;
        var oursAt = rules.Select((r, i) => (r, i)).Where(x => ours.Contains(x.r.Name)).Select(x => x.i).ToArray();
        // Foreign rules above Postern's lowest rule run before it; with no Postern rule yet, all of them will.
        var bound = oursAt.Length > 0 ? oursAt.Max() : rules.Count;
        var headers = new[] { blueprint.Deployment.KeyHeader, blueprint.Deployment.LoopHeader };
        for (var i = 0; i < bound; i++)
        {
            var rule = rules[i];
            if (ours.Contains(rule.Name) || !Planner.IsEnabled(rule) || !IsEnforced(rule))
                continue;
            var problems = RuleProblems(rule, headers, blueprint.AllConnectorNames).ToList();
            if (problems.Count == 0)
                continue;
            var when = Conditions(rule);
            conflicts.Add(new Conflict($"transport rule '{rule.Name}' (priority {rule.GetInt("Priority") ?? i})",
                $"above Postern's rules, it {string.Join(", ", problems)} for {when}: that mail is not routed through Postern as it should be"));
        }

        var postConnectors = blueprint.AllConnectorNames.ToHashSet(StringComparer.OrdinalIgnoreCase);
        foreach (var connector in state.OutboundConnectors.Where(c => !postConnectors.Contains(c.Name) && c.GetBool("Enabled") != false))
        {
            var hosts = connector.GetList("SmartHosts");
            if (hosts.Count == 0 || connector.GetBool("UseMXRecord") == true)
                continue;
            var target = string.Join(", ", hosts);
            if (connector.GetList("RecipientDomains").Any(d => d.Trim() == "*"))
            {
                conflicts.Add(new Conflict($"outbound connector '{connector.Name}'", $"sends all outgoing mail to {target}: another gateway on the way out"));
                continue;
            }
            var users = rules.Where(r => !ours.Contains(r.Name) && Planner.IsEnabled(r)
                && TenantState.Same(r.GetString("RouteMessageOutboundConnector"), connector.Name)).Select(r => $"'{r.Name}'").ToArray();
            if (connector.GetBool("IsTransportRuleScoped") == true && users.Length > 0)
                conflicts.Add(new Conflict($"outbound connector '{connector.Name}'", $"rule {string.Join(", ", users)} routes mail to {target}: another gateway"));
        }
        foreach (var connector in state.InboundConnectors.Where(c => !postConnectors.Contains(c.Name) && c.GetBool("Enabled") != false))
        {
            var allDomains = connector.GetList("SenderDomains").Any(d => d.Trim().Replace("smtp:", "", StringComparison.OrdinalIgnoreCase).StartsWith('*'));
            var ips = connector.GetList("SenderIPAddresses");
            var certificate = connector.GetString("TlsSenderCertificateName");
            var from = ips.Count > 0 ? string.Join(", ", ips) : certificate is { Length: > 0 } ? $"the certificate {certificate}" : null;
            if (allDomains && from is not null)
                conflicts.Add(new Conflict($"inbound connector '{connector.Name}'",
                    $"accepts mail for every sender domain from {from}: another gateway in front of Exchange Online (mail would be scanned twice, and its sender checks see the gateway)"));
        }

        foreach (var arc in blueprint.Items.OfType<ArcSealerItem>())
        {
            if (!state.ArcTrustedSealers.Contains(arc.Domain, StringComparer.OrdinalIgnoreCase))
                conflicts.Add(new Conflict("ARC", $"{arc.Domain} is not a trusted ARC sealer: Exchange Online does not trust the authentication results Postern's seal carries, and may junk mail Postern returns"));
        }
        // MC1226222: on an OnPremises connector Exchange Online attributes mail to a tenant by the certificate's domain
        // only when that domain is one of the tenant's accepted domains; otherwise by MAIL FROM, then RCPT TO, and mail
        // from another Postern customer can be attributed to the sender's tenant.
        foreach (var connector in blueprint.Items.OfType<ConnectorItem>().Where(c => c.Direction == ConnectorDirection.Inbound
            && "OnPremises".Equals(c.Setting("ConnectorType") as string, StringComparison.OrdinalIgnoreCase)))
        {
            if (connector.Setting("TlsSenderCertificateName") is string name
                && !state.AcceptedDomains.Any(d => TenantState.Same(d.GetString("DomainName") ?? d.Name, name)))
                conflicts.Add(new Conflict($"certificate domain '{name}'",
                    "is not an accepted domain of the tenant: Exchange Online attributes the mail Postern returns by it only when it is (MC1226222), " +
                    $"else by its sender's domain, and mail from another Postern customer can reach the wrong tenant's rules; add it in the Microsoft 365 admin centre (Settings > Domains; its TXT record goes in the {blueprint.Deployment.ProductDomain} zone)"));
        }
        foreach (var check in blueprint.Items.OfType<AcceptedDomainCheck>())
        {
            foreach (var domain in check.Domains)
            {
                var accepted = state.AcceptedDomains.FirstOrDefault(d => TenantState.Same(d.GetString("DomainName") ?? d.Name, domain));
                if (accepted is null)
                    conflicts.Add(new Conflict($"accepted domain '{domain}'", "does not exist in the tenant: Exchange Online does not take its mail"));
                else if (!TenantState.Same(accepted.GetString("DomainType"), "Authoritative"))
                    conflicts.Add(new Conflict($"accepted domain '{domain}'", $"is {accepted.GetString("DomainType")}, not Authoritative: mail for unknown recipients is relayed on instead of refused"));
            }
        }
        return conflicts;
    }

    private static bool IsEnforced(ExoObject rule) =>
        rule.GetString("Mode") is null || TenantState.Same(rule.GetString("Mode"), "Enforce");

    private static IEnumerable<string> RuleProblems(ExoObject rule, string[] headers, IReadOnlyList<string> ourConnectors)
    {
        if (rule.GetBool("StopRuleProcessing") == true)
            yield return "stops processing more rules";
        if (rule.GetString("RouteMessageOutboundConnector") is { Length: > 0 } connector && !ourConnectors.Contains(connector, StringComparer.OrdinalIgnoreCase))
            yield return $"routes mail to connector '{connector}'";
        if (ValueCompare.IsSet(rule, "RedirectMessageTo"))
            yield return $"redirects mail to {ValueCompare.Display(rule, "RedirectMessageTo")}";
        if (rule.GetInt("SetSCL") is { } scl)
            yield return $"sets the SCL to {scl}";
        if (rule.GetBool("DeleteMessage") == true)
            yield return "deletes mail";
        if (rule.GetBool("Quarantine") == true)
            yield return "quarantines mail";
        if (ValueCompare.IsSet(rule, "RejectMessageReasonText") || ValueCompare.IsSet(rule, "RejectMessageEnhancedStatusCode"))
            yield return "rejects mail";
        if (ValueCompare.IsSet(rule, "ModerateMessageByUser") || rule.GetBool("ModerateMessageByManager") == true)
            yield return "holds mail for moderation";
        foreach (var header in headers)
        {
            if (TenantState.Same(rule.GetString("SetHeaderName"), header) || TenantState.Same(rule.GetString("RemoveHeader"), header))
                yield return $"changes Postern's {header} header";
        }
    }

    /// <summary>"all mail", or the rule's conditions by name.</summary>
    private static string Conditions(ExoObject rule)
    {
        var conditions = CmdletReference.Default.Parameters("New-TransportRule")
            .Where(p => p.RulePart == "condition" && ValueCompare.IsSet(rule, p.Name))
            .Select(p => p.Name).ToArray();
        return conditions.Length == 0 ? "all mail" : "mail matching " + string.Join(", ", conditions);
    }
}
