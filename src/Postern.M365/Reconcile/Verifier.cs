using Postern.M365.Blueprints;
using Postern.M365.Exo;

namespace Postern.M365.Reconcile;

/// <summary>How one item stands.</summary>
public enum ItemStatus
{
    Present,
    Missing,
    Disabled,

    /// <summary>Present, but parameters differ (<see cref="ItemReport.Differences"/>).</summary>
    Drifted,
}

/// <summary>One item of the blueprint as found in the tenant.</summary>
public sealed record ItemReport(string Kind, string Name, ItemStatus Status, IReadOnlyList<Difference> Differences, string? Note = null)
{
    public string Title => $"{Kind} '{Name}'";
}

/// <summary>Something outside Postern's items that bypasses or breaks the flow through Postern.</summary>
public sealed record Conflict(string Subject, string Problem);

/// <summary>The result of verify: every item, every conflict, and whether all is as it should be.</summary>
public sealed class VerifyReport
{
    public required Blueprint Blueprint { get; init; }

    public required IReadOnlyList<ItemReport> Items { get; init; }

    public required IReadOnlyList<Conflict> Conflicts { get; init; }

    public bool Ok => Items.All(i => i.Status == ItemStatus.Present) && Conflicts.Count == 0;
}

/// <summary>
/// Verify: each item of the blueprint present, missing, disabled or drifted (and which parameter),
/// and the conflicts around them. Needs no relay key: a rule's key is checked against the stored hash.
/// </summary>
public static class Verifier
{
    /// <summary>Each item of <paramref name="blueprint"/> against <paramref name="state"/>; <paramref name="exchangeWarnings"/> is what Exchange Online warned about an item when Postern last changed it (item title → warning).</summary>
    public static VerifyReport Verify(Blueprint blueprint, TenantState state, IReadOnlyDictionary<string, string>? exchangeWarnings = null)
    {
        var items = new List<ItemReport>();
        var tenant = blueprint.Tenant;
        foreach (var item in blueprint.Items)
        {
            switch (item)
            {
                case ConnectorItem connector:
                    {
                        var current = connector.Direction == ConnectorDirection.Inbound ? state.InboundConnector(connector.Name) : state.OutboundConnector(connector.Name);
                        if (current is null)
                        {
                            items.Add(new ItemReport(connector.Kind, connector.Name, ItemStatus.Missing, []));
                            break;
                        }
                        var differences = Planner.Differences(connector.Settings, current, tenant).ToList();
                        differences.AddRange(connector.MustBeEmpty.Where(e => ValueCompare.IsSet(current, e)).Select(e => new Difference(e, "(none)", ValueCompare.Display(current, e))));
                        var disabled = differences.Any(d => d.Parameter == "Enabled");
                        differences.RemoveAll(d => d.Parameter == "Enabled");
                        string? note = null;
                        if (disabled && exchangeWarnings?.GetValueOrDefault($"{connector.Kind} '{connector.Name}'") is { } warning)
                            note = $"by Exchange Online: {warning} Once Microsoft support has enabled it, run postern m365 apply {tenant.Name}";
                        items.Add(Report(connector.Kind, connector.Name, differences, disabled, note));
                        break;
                    }
                case TransportRuleItem rule:
                    {
                        var current = state.Rule(rule.Name);
                        if (current is null)
                        {
                            items.Add(new ItemReport(rule.Kind, rule.Name, ItemStatus.Missing, []));
                            break;
                        }
                        var differences = Planner.Differences(rule.Settings, current, tenant).ToList();
                        var desired = rule.Settings.Select(s => s.Key).ToHashSet(StringComparer.OrdinalIgnoreCase);
                        differences.AddRange(Planner.ClearableRuleParameters()
                            .Where(p => !desired.Contains(p.Key) && ValueCompare.IsSet(current, p.Key))
                            .Select(p => new Difference(p.Key, "(none)", ValueCompare.HideLoopTokens(ValueCompare.Display(current, p.Key), tenant))));
                        differences.AddRange(OrderDifferences(blueprint, state, rule));
                        items.Add(Report(rule.Kind, rule.Name, differences, !Planner.IsEnabled(current),
                            "'postern m365 activate' enables Postern's rules"));
                        break;
                    }
                case ArcSealerItem arc:
                    items.Add(state.ArcTrustedSealers.Contains(arc.Domain, StringComparer.OrdinalIgnoreCase)
                        ? new ItemReport(arc.Kind, arc.Name, ItemStatus.Present, [])
                        : new ItemReport(arc.Kind, arc.Name, ItemStatus.Missing, [],
                            state.ArcTrustedSealers.Count == 0 ? "no sealer is trusted" : "trusted: " + string.Join(", ", state.ArcTrustedSealers)));
                    break;
                case IpAllowListItem allow:
                    {
                        var present = state.IpAllowList.Select(Planner.CanonicalEntry).ToHashSet(StringComparer.OrdinalIgnoreCase);
                        var missing = allow.Addresses.Where(a => !present.Contains(a)).ToArray();
                        items.Add(missing.Length == 0
                            ? new ItemReport(allow.Kind, allow.Name, ItemStatus.Present, [])
                            : missing.Length == allow.Addresses.Count
                                ? new ItemReport(allow.Kind, allow.Name, ItemStatus.Missing, [], "none of " + string.Join(", ", allow.Addresses) + " is listed")
                                : new ItemReport(allow.Kind, allow.Name, ItemStatus.Drifted,
                                    [new Difference("IPAllowList", "includes " + string.Join(", ", missing), string.Join(", ", state.IpAllowList))]));
                        break;
                    }
                case SpoofAllowItem spoof:
                    {
                        var current = state.SpoofItem(spoof.SpoofType, spoof.SpoofedUser, spoof.SendingInfrastructure);
                        items.Add(current is null
                            ? new ItemReport(spoof.Kind, spoof.Name, ItemStatus.Missing, [])
                            : TenantState.Same(current.GetString("Action"), "Allow")
                                ? new ItemReport(spoof.Kind, spoof.Name, ItemStatus.Present, [])
                                : new ItemReport(spoof.Kind, spoof.Name, ItemStatus.Drifted, [new Difference("Action", "Allow", current.GetString("Action") ?? "(none)")]));
                        break;
                    }
                case RemoteDomainItem remote:
                    items.Add(state.DefaultRemoteDomain is { } domain
                        ? Report(remote.Kind, remote.Name, Planner.Differences(remote.Settings, domain, null).ToList(), false)
                        : new ItemReport(remote.Kind, remote.Name, ItemStatus.Missing, []));
                    break;
                case AcceptedDomainCheck check:
                    foreach (var name in check.Domains)
                    {
                        var accepted = state.AcceptedDomains.FirstOrDefault(d => TenantState.Same(d.GetString("DomainName") ?? d.Name, name));
                        items.Add(accepted is null
                            ? new ItemReport("accepted domain", name, ItemStatus.Missing, [], "not an accepted domain of the tenant")
                            : TenantState.Same(accepted.GetString("DomainType"), "Authoritative")
                                ? new ItemReport("accepted domain", name, ItemStatus.Present, [])
                                : new ItemReport("accepted domain", name, ItemStatus.Drifted, [new Difference("DomainType", "Authoritative", accepted.GetString("DomainType") ?? "(none)")]));
                    }
                    break;
            }
        }
        return new VerifyReport { Blueprint = blueprint, Items = items, Conflicts = ConflictAnalysis.Find(blueprint, state) };
    }

    private static ItemReport Report(string kind, string name, List<Difference> differences, bool disabled, string? disabledNote = null)
    {
        if (differences.Count > 0)
            return new ItemReport(kind, name, ItemStatus.Drifted, differences, disabled ? "also disabled" : null);
        return disabled
            ? new ItemReport(kind, name, ItemStatus.Disabled, [], disabledNote)
            : new ItemReport(kind, name, ItemStatus.Present, []);
    }

    /// <summary>Postern's rule must be above every later Postern rule (Loop Check first, outbound above inbound).</summary>
    private static IEnumerable<Difference> OrderDifferences(Blueprint blueprint, TenantState state, TransportRuleItem rule)
    {
        var rules = blueprint.Rules;
        var index = rules.ToList().IndexOf(rule);
        var priority = state.Rule(rule.Name)?.GetInt("Priority");
        foreach (var later in rules.Skip(index + 1))
        {
            var laterPriority = state.Rule(later.Name)?.GetInt("Priority");
            if (priority is { } p && laterPriority is { } q && q < p)
                yield return new Difference("Priority", $"above '{later.Name}'", $"{p}, below '{later.Name}' ({q})");
        }
    }
}
