using Postern.M365.Blueprints;
using Postern.M365.Exo;

namespace Postern.M365.Reconcile;

/// <summary>
/// Compares a blueprint with the tenant's state and lists the steps that close the gap. Rules are
/// created disabled and below every existing rule, except that a missing rule goes right above the
/// Postern rule it must precede (Loop Check above Redirect, outbound above inbound). Lists are
/// merged, never replaced. Running the plan's steps and planning again gives a plan with no changes.
/// </summary>
public static class Planner
{
    /// <param name="blueprint">What Postern wants.</param>
    /// <param name="state">What the tenant has.</param>
    /// <param name="activated">The tenant's rules were activated, so a disabled rule of Postern's is enabled again.</param>
    public static Plan Create(Blueprint blueprint, TenantState state, bool activated)
    {
        var steps = new List<PlanStep>();
        var warnings = new List<string>(blueprint.Warnings);
        // The rule order as it will be while the steps run, to give each new rule its priority.
        var order = state.TransportRules.Select(r => r.Name).ToList();
        var tenant = blueprint.Tenant;

        foreach (var connector in blueprint.Connectors)
            steps.Add(ConnectorStep(connector, connector.Direction == Blueprints.ConnectorDirection.Inbound
                ? state.InboundConnector(connector.Name) : state.OutboundConnector(connector.Name), tenant));

        // Postern's rules the profile does not have (after a profile change) go before new rules route anywhere.
        var wanted = blueprint.Rules.Select(r => r.Name).ToHashSet(StringComparer.OrdinalIgnoreCase);
        foreach (var stale in blueprint.AllRuleNames.Where(n => !wanted.Contains(n)).Select(state.Rule).OfType<ExoObject>())
        {
            steps.Add(new PlanStep
            {
                Kind = "transport rule",
                Name = stale.Name,
                Action = StepAction.Delete,
                Summary = $"delete: not part of the {ProvisioningProfiles.Format(blueprint.Profile)} profile",
                Invocations = [new CmdletInvocation("Remove-TransportRule", ("Identity", stale.Name), ("Confirm", false))],
            });
            order.RemoveAll(n => TenantState.Same(n, stale.Name));
        }

        var rules = blueprint.Rules;
        var enable = new List<string>();
        for (var i = 0; i < rules.Count; i++)
        {
            var rule = rules[i];
            var later = rules.Skip(i + 1).Select(r => r.Name).ToArray();
            var current = state.Rule(rule.Name);
            steps.AddRange(RuleSteps(rule, current, later, order, tenant));
            if (activated && (current is null || !IsEnabled(current)))
                enable.Add(rule.Name);
        }
        foreach (var name in enable)
        {
            steps.Add(new PlanStep
            {
                Kind = "transport rule",
                Name = name,
                Action = StepAction.Enable,
                Summary = "enable (the tenant's rules are activated)",
                Invocations = [new CmdletInvocation("Enable-TransportRule", ("Identity", name))],
            });
        }

        foreach (var item in blueprint.Items)
        {
            switch (item)
            {
                case ArcSealerItem arc:
                    steps.Add(ArcStep(arc, state));
                    break;
                case IpAllowListItem allow:
                    steps.Add(AllowListStep(allow, state));
                    break;
                case SpoofAllowItem spoof:
                    steps.Add(SpoofStep(spoof, state));
                    break;
                case RemoteDomainItem remote:
                    steps.Add(RemoteDomainStep(remote, state));
                    break;
                case AcceptedDomainCheck check:
                    var (step, problems) = AcceptedDomainsStep(check, state);
                    warnings.AddRange(problems);
                    steps.Add(step);
                    break;
            }
        }

        if (steps.Any(s => s.NeedsRelayKey))
            warnings.Add($"some steps set the relay key in a rule: give the key of tenant '{tenant.Name}' (--relay-key-file FILE or POSTERN_RELAY_KEY) to apply them");
        return new Plan { Blueprint = blueprint, Steps = steps, Warnings = warnings };
    }

    internal static bool IsEnabled(ExoObject rule) => TenantState.Same(rule.GetString("State"), "Enabled");

    private static PlanStep ConnectorStep(ConnectorItem connector, ExoObject? current, Core.Tenants.Tenant tenant)
    {
        if (current is null)
        {
            return new PlanStep
            {
                Kind = connector.Kind,
                Name = connector.Name,
                Action = StepAction.Create,
                Summary = "create (enabled)",
                Invocations = [connector.Create()],
            };
        }
        var changes = Differences(connector.Settings, current, tenant).ToList();
        foreach (var empty in connector.MustBeEmpty.Where(e => ValueCompare.IsSet(current, e)))
            changes.Add(new Difference(empty, "(none)", ValueCompare.Display(current, empty)));
        if (changes.Count == 0)
            return Nothing(connector.Kind, connector.Name, "nothing to do");
        var noun = connector.Noun;
        if (connector.Direction == Blueprints.ConnectorDirection.Inbound && changes.Any(c => c.Parameter == "ConnectorType"))
        {
            return new PlanStep
            {
                Kind = connector.Kind,
                Name = connector.Name,
                Action = StepAction.Recreate,
                Changes = changes,
                Summary = $"re-create: ConnectorType is {ValueCompare.Display(current, "ConnectorType")}, must be {connector.Setting("ConnectorType")} (an inbound connector's type cannot change in place)",
                Invocations = [new CmdletInvocation("Remove-" + noun, ("Identity", current.Name), ("Confirm", false)), connector.Create()],
            };
        }
        var parameters = changes.Select(c => new KeyValuePair<string, object?>(c.Parameter,
            connector.MustBeEmpty.Contains(c.Parameter) ? null : connector.Setting(c.Parameter)));
        var onlyEnable = changes.Count == 1 && changes[0].Parameter == "Enabled";
        return new PlanStep
        {
            Kind = connector.Kind,
            Name = connector.Name,
            Changes = changes,
            Action = onlyEnable ? StepAction.Enable : StepAction.Update,
            Summary = onlyEnable ? "enable" : "update " + string.Join(", ", changes.Select(c => c.Parameter)),
            Invocations = [new CmdletInvocation("Set-" + noun, parameters.Prepend(new("Identity", current.Name)))],
        };
    }

    private static IEnumerable<PlanStep> RuleSteps(TransportRuleItem rule, ExoObject? current, string[] later, List<string> order, Core.Tenants.Tenant tenant)
    {
        var needsKey = rule.SetsRelayKey && Equals(rule.Setting("SetHeaderValue"), Blueprint.RelayKeyPlaceholder);
        var nextIndex = order.FindIndex(n => later.Contains(n, StringComparer.OrdinalIgnoreCase));
        if (current is null)
        {
            int? priority = nextIndex >= 0 ? nextIndex : null;
            var where = nextIndex >= 0
                ? $"above '{order[nextIndex]}'"
                : order.Count == 0 ? "as the only rule" : $"below the {order.Count} existing rule{(order.Count == 1 ? "" : "s")}";
            if (priority is { } p)
                order.Insert(p, rule.Name);
            else
                order.Add(rule.Name);
            yield return new PlanStep
            {
                Kind = rule.Kind,
                Name = rule.Name,
                Action = StepAction.Create,
                NeedsRelayKey = needsKey,
                Summary = $"create, disabled, {where}",
                Invocations = [rule.Create(priority)],
            };
            yield break;
        }

        var changes = Differences(rule.Settings, current, tenant).ToList();
        var desired = rule.Settings.Select(s => s.Key).ToHashSet(StringComparer.OrdinalIgnoreCase);
        foreach (var (name, clearValue) in ClearableRuleParameters().Where(p => !desired.Contains(p.Key) && ValueCompare.IsSet(current, p.Key)))
            changes.Add(new Difference(name, "(none)", ValueCompare.HideLoopTokens(ValueCompare.Display(current, name), tenant)));
        if (changes.Count > 0)
        {
            var clear = ClearableRuleParameters().ToDictionary(p => p.Key, p => p.Value, StringComparer.OrdinalIgnoreCase);
            var parameters = changes.Select(c => new KeyValuePair<string, object?>(c.Parameter,
                desired.Contains(c.Parameter) ? rule.Setting(c.Parameter) : clear[c.Parameter])).ToList();
            // Exchange takes a header and its words (or value) only together: a new loop token alone, or a new
            // relay key alone, still names the header it belongs to.
            foreach (var change in changes)
            {
                if (CmdletReference.PairedWith(change.Parameter) is { } partner && !parameters.Any(p => p.Key.Equals(partner, StringComparison.OrdinalIgnoreCase)))
                    parameters.Add(new(partner, desired.Contains(partner) ? rule.Setting(partner) : clear.GetValueOrDefault(partner)));
            }
            yield return new PlanStep
            {
                Kind = rule.Kind,
                Name = rule.Name,
                Action = StepAction.Update,
                Changes = changes,
                NeedsRelayKey = needsKey && changes.Any(c => c.Parameter == "SetHeaderValue"),
                Summary = "update " + string.Join(", ", changes.Select(c => c.Parameter)),
                Invocations = [new CmdletInvocation("Set-TransportRule", parameters.Prepend(new("Identity", current.Name)))],
            };
        }
        var index = order.FindIndex(n => TenantState.Same(n, rule.Name));
        if (nextIndex >= 0 && nextIndex < index)
        {
            var above = order[nextIndex];
            order.RemoveAt(index);
            order.Insert(nextIndex, rule.Name);
            yield return new PlanStep
            {
                Kind = rule.Kind,
                Name = rule.Name,
                Action = StepAction.Move,
                Changes = [new Difference("Priority", $"above '{above}'", $"below '{above}'")],
                Summary = $"move above '{above}' (priority {nextIndex})",
                Invocations = [new CmdletInvocation("Set-TransportRule", ("Identity", current.Name), ("Priority", nextIndex))],
            };
        }
        else if (changes.Count == 0)
        {
            yield return Nothing(rule.Kind, rule.Name, IsEnabled(current) ? "nothing to do (enabled)" : "nothing to do (disabled)");
        }
    }

    /// <summary>
    /// Rule parameters a Postern rule must not have unless its blueprint sets them: every condition and
    /// exception (they change which mail is routed) and the actions that would change what the rule does.
    /// The value is what clears it.
    /// </summary>
    internal static IEnumerable<KeyValuePair<string, object?>> ClearableRuleParameters()
    {
        foreach (var p in CmdletReference.Default.Parameters("Set-TransportRule"))
        {
            if (p.Online && !p.ReservedInternal && p.RulePart is "condition" or "exception" && p.Name != "ExpiryDate"
                || p.Name is "RemoveHeader" or "SetSCL" or "RouteMessageOutboundRequireTls" or "StopRuleProcessing" or "RedirectMessageTo"
                    or "SetHeaderName" or "SetHeaderValue" or "RouteMessageOutboundConnector" or "DeleteMessage" or "Quarantine")
                yield return new(p.Name, p.Type == "Boolean" ? false : null);
        }
    }

    private static PlanStep ArcStep(ArcSealerItem arc, TenantState state)
    {
        if (state.ArcTrustedSealers.Contains(arc.Domain, StringComparer.OrdinalIgnoreCase))
            return Nothing(arc.Kind, arc.Name, "nothing to do");
        var count = state.ArcTrustedSealers.Count;
        return new PlanStep
        {
            Kind = arc.Kind,
            Name = arc.Name,
            Action = StepAction.Create,
            Summary = count == 0 ? "add (the list is empty)" : $"add, keeping the {count} sealer{(count == 1 ? "" : "s")} already trusted",
            Changes = [new Difference("ArcTrustedSealers", $"includes {arc.Domain}", count == 0 ? "(none)" : string.Join(", ", state.ArcTrustedSealers))],
            Invocations = [arc.Merge(state.ArcTrustedSealers)],
        };
    }

    private static PlanStep AllowListStep(IpAllowListItem allow, TenantState state)
    {
        var present = state.IpAllowList.Select(CanonicalEntry).ToHashSet(StringComparer.OrdinalIgnoreCase);
        var missing = allow.Addresses.Where(a => !present.Contains(CanonicalEntry(a))).ToArray();
        if (missing.Length == 0)
            return Nothing(allow.Kind, allow.Name, "nothing to do");
        return new PlanStep
        {
            Kind = allow.Kind,
            Name = allow.Name,
            Action = StepAction.Update,
            Summary = $"add {string.Join(", ", missing)}" + (state.IpAllowList.Count > 0 ? $", keeping the {state.IpAllowList.Count} entries there" : ""),
            Changes = [new Difference("IPAllowList", $"includes {string.Join(", ", missing)}", state.IpAllowList.Count == 0 ? "(none)" : string.Join(", ", state.IpAllowList))],
            Invocations = [allow.Add(missing)],
        };
    }

    internal static string CanonicalEntry(string entry) =>
        entry.EndsWith("/32", StringComparison.Ordinal) ? entry[..^3] : entry.Trim();

    private static PlanStep SpoofStep(SpoofAllowItem spoof, TenantState state)
    {
        var current = state.SpoofItem(spoof.SpoofType, spoof.SpoofedUser, spoof.SendingInfrastructure);
        if (current is null)
            return new PlanStep { Kind = spoof.Kind, Name = spoof.Name, Action = StepAction.Create, Summary = "create", Invocations = [spoof.Create()] };
        if (TenantState.Same(current.GetString("Action"), "Allow"))
            return Nothing(spoof.Kind, spoof.Name, "nothing to do");
        return new PlanStep
        {
            Kind = spoof.Kind,
            Name = spoof.Name,
            Action = StepAction.Update,
            Summary = "update Action",
            Changes = [new Difference("Action", "Allow", current.GetString("Action") ?? "(none)")],
            Invocations = [new CmdletInvocation("Set-TenantAllowBlockListSpoofItems", ("Identity", "Default"), ("Ids", new[] { TenantState.SpoofId(current) }), ("Action", "Allow"))],
        };
    }

    private static PlanStep RemoteDomainStep(RemoteDomainItem remote, TenantState state)
    {
        if (state.DefaultRemoteDomain is not { } current)
        {
            return new PlanStep
            {
                Kind = remote.Kind,
                Name = remote.Name,
                Action = StepAction.Update,
                Summary = "update (not read)",
                Invocations = [remote.Set(remote.Settings)],
            };
        }
        var changes = Differences(remote.Settings, current, null).ToList();
        if (changes.Count == 0)
            return Nothing(remote.Kind, remote.Name, "nothing to do");
        return new PlanStep
        {
            Kind = remote.Kind,
            Name = remote.Name,
            Action = StepAction.Update,
            Changes = changes,
            Summary = "update " + string.Join(", ", changes.Select(c => c.Parameter)),
            Invocations = [remote.Set(remote.Settings.Where(s => changes.Any(c => c.Parameter == s.Key)))],
        };
    }

    /// <summary>A check, not a change: the step, and the problems found (which also become warnings).</summary>
    private static (PlanStep Step, IReadOnlyList<string> Problems) AcceptedDomainsStep(AcceptedDomainCheck check, TenantState state)
    {
        var notes = new List<string>();
        var problems = new List<string>();
        foreach (var domain in check.Domains)
        {
            var accepted = state.AcceptedDomains.FirstOrDefault(d => TenantState.Same(d.GetString("DomainName") ?? d.Name, domain));
            if (accepted is null)
                problems.Add($"'{domain}' is not an accepted domain of the tenant: Exchange Online does not take its mail");
            else if (!TenantState.Same(accepted.GetString("DomainType"), "Authoritative"))
                problems.Add($"accepted domain '{domain}' is {accepted.GetString("DomainType")}, not Authoritative: mail for unknown recipients is relayed on instead of refused (seed 003 step 26)");
            else
                notes.Add($"'{domain}' is Authoritative");
        }
        var step = new PlanStep
        {
            Kind = check.Kind,
            Name = check.Name,
            Action = StepAction.Check,
            Notes = [.. problems, .. notes],
            Summary = problems.Count == 0 ? "check: Authoritative" : "check: " + string.Join("; ", problems),
        };
        return (step, problems);
    }

    internal static IEnumerable<Difference> Differences(IReadOnlyList<KeyValuePair<string, object?>> settings, ExoObject current, Core.Tenants.Tenant? tenant)
    {
        foreach (var (name, desired) in settings)
        {
            if (ValueCompare.Compare(name, desired, current, tenant) is { } difference)
                yield return difference;
        }
    }

    private static PlanStep Nothing(string kind, string name, string summary) =>
        new() { Kind = kind, Name = name, Action = StepAction.Nothing, Summary = summary };
}
