using Postern.Core;
using Postern.M365.Blueprints;
using Postern.M365.Exo;

namespace Postern.M365.Reconcile;

/// <summary>
/// Activate, deactivate and remove: the steps that switch Postern's rules on or off, and the steps
/// that delete exactly what Postern made (its named rules and connectors, its sealer, addresses
/// and spoof entries) and nothing else.
/// </summary>
public static class Lifecycle
{
    /// <summary>Enables Postern's rules top to bottom, so Loop Check is on before any rule routes mail to Postern.</summary>
    public static IReadOnlyList<PlanStep> Activate(Blueprint blueprint, TenantState state)
    {
        var missing = blueprint.Rules.Where(r => state.Rule(r.Name) is null).Select(r => $"'{r.Name}'").ToArray();
        if (missing.Length > 0)
            throw new PosternException($"tenant '{blueprint.Tenant.Name}' lacks the rule{(missing.Length == 1 ? "" : "s")} {string.Join(", ", missing)}: run 'postern m365 apply {blueprint.Tenant.Name}' first");
        return blueprint.Rules.Select(r => state.Rule(r.Name)!).Select(rule => Planner.IsEnabled(rule)
            ? new PlanStep { Kind = "transport rule", Name = rule.Name, Action = StepAction.Nothing, Summary = "enabled already" }
            : new PlanStep
            {
                Kind = "transport rule",
                Name = rule.Name,
                Action = StepAction.Enable,
                Summary = "enable",
                Invocations = [new CmdletInvocation("Enable-TransportRule", ("Identity", rule.Name))],
            }).ToArray();
    }

    /// <summary>Disables Postern's rules bottom to top: mail stops going to Postern before Loop Check goes off.</summary>
    public static IReadOnlyList<PlanStep> Deactivate(Blueprint blueprint, TenantState state) =>
        blueprint.AllRuleNames.Select(state.Rule).OfType<ExoObject>()
            .OrderByDescending(r => r.GetInt("Priority") ?? 0)
            .Select(rule => Planner.IsEnabled(rule)
                ? new PlanStep
                {
                    Kind = "transport rule",
                    Name = rule.Name,
                    Action = StepAction.Disable,
                    Summary = "disable",
                    Invocations = [new CmdletInvocation("Disable-TransportRule", ("Identity", rule.Name), ("Confirm", false))],
                }
                : new PlanStep { Kind = "transport rule", Name = rule.Name, Action = StepAction.Nothing, Summary = "disabled already" })
            .ToArray();

    /// <summary>
    /// Deletes Postern's items: its rules (routing rules first), then its connectors, then its ARC
    /// sealer, egress addresses and spoof entries from the lists, keeping every other entry. The
    /// remote domain settings stay: they are harmless and their earlier values are not known.
    /// </summary>
    public static IReadOnlyList<PlanStep> Remove(Blueprint blueprint, TenantState state)
    {
        var steps = new List<PlanStep>();
        foreach (var rule in blueprint.AllRuleNames.Select(state.Rule).OfType<ExoObject>().OrderByDescending(r => r.GetInt("Priority") ?? 0))
            steps.Add(Delete("transport rule", rule.Name, new CmdletInvocation("Remove-TransportRule", ("Identity", rule.Name), ("Confirm", false))));
        // Outbound first: Exchange refuses to delete a connector a rule still routes to, and the rules are gone by now.
        foreach (var name in blueprint.AllConnectorNames)
        {
            if (state.OutboundConnector(name) is { } outbound)
                steps.Add(Delete("outbound connector", outbound.Name, new CmdletInvocation("Remove-OutboundConnector", ("Identity", outbound.Name), ("Confirm", false))));
        }
        foreach (var name in blueprint.AllConnectorNames)
        {
            if (state.InboundConnector(name) is { } inbound)
                steps.Add(Delete("inbound connector", inbound.Name, new CmdletInvocation("Remove-InboundConnector", ("Identity", inbound.Name), ("Confirm", false))));
        }

        var sealer = blueprint.Deployment.ArcSealerDomain;
        if (state.ArcTrustedSealers.Contains(sealer, StringComparer.OrdinalIgnoreCase))
        {
            var rest = state.ArcTrustedSealers.Where(s => !s.Equals(sealer, StringComparison.OrdinalIgnoreCase)).ToArray();
            steps.Add(new PlanStep
            {
                Kind = "ARC trusted sealer",
                Name = sealer,
                Action = StepAction.Delete,
                Summary = rest.Length == 0 ? "delete (no sealer stays trusted)" : $"delete, keeping {string.Join(", ", rest)}",
                // Set-ArcConfig replaces the list; " " is how Exchange takes an empty one.
                Invocations = [new CmdletInvocation("Set-ArcConfig", ("Identity", "Default"), ("ArcTrustedSealers", rest.Length == 0 ? new[] { " " } : rest))],
            });
        }

        var egress = Core.Tenants.Region.All.SelectMany(r => blueprint.Deployment.For(r).EgressIPv4).Distinct().ToArray();
        var ours = egress.Select(a => a.ToString()).ToHashSet(StringComparer.OrdinalIgnoreCase);
        var listed = state.IpAllowList.Where(e => ours.Contains(Planner.CanonicalEntry(e))).ToArray();
        if (listed.Length > 0)
        {
            steps.Add(new PlanStep
            {
                Kind = "connection filter IP allow list",
                Name = "Default",
                Action = StepAction.Delete,
                Summary = $"delete {string.Join(", ", listed)}, keeping the other {state.IpAllowList.Count - listed.Length} entries",
                Invocations = [new CmdletInvocation("Set-HostedConnectionFilterPolicy", ("Identity", "Default"), ("IPAllowList", ExoHashtable.Removing(listed)))],
            });
        }

        var networks = egress.Select(IpFormat.Slash24).ToHashSet(StringComparer.OrdinalIgnoreCase);
        var spoof = state.SpoofItems.Where(i => TenantState.Same(i.GetString("SpoofedUser"), "*") && networks.Contains(i.GetString("SendingInfrastructure") ?? "")).ToArray();
        if (spoof.Length > 0)
        {
            steps.Add(new PlanStep
            {
                Kind = "spoofed sender allow entries",
                Name = string.Join(", ", spoof.Select(i => $"{i.GetString("SpoofType")}: *, {i.GetString("SendingInfrastructure")}")),
                Action = StepAction.Delete,
                Summary = "delete",
                Invocations = [new CmdletInvocation("Remove-TenantAllowBlockListSpoofItems", ("Identity", "Default"), ("Ids", spoof.Select(TenantState.SpoofId).ToArray()))],
            });
        }
        return steps;
    }

    private static PlanStep Delete(string kind, string name, CmdletInvocation invocation) =>
        new() { Kind = kind, Name = name, Action = StepAction.Delete, Summary = "delete", Invocations = [invocation] };
}
