using System.Net;
using Postern.M365.Blueprints;
using Postern.M365.Reconcile;

namespace Postern.M365.Simulation;

/// <summary>One pass through the tenant's rules and where it sent the message.</summary>
public sealed record SimulationPass(string Title, RulePass Rules, string Where);

/// <summary>The path a message would take through the tenant and Postern, and whether it would loop.</summary>
public sealed record SimulationResult(IReadOnlyList<SimulationPass> Passes, string Outcome, int PosternPasses, bool Loops);

/// <summary>
/// <c>postern m365 simulate</c>: from the tenant's actual rules and connectors, the path a message takes. A message
/// the rules route to Postern's outbound connector comes back from Postern without the relay key and with the
/// tenant's loop token, through Postern's inbound connector, and meets the rules again; routed to Postern a second
/// time it would loop (Postern refuses that pass with 554 5.4.6).
/// </summary>
public static class PathSimulator
{
    public static SimulationResult Simulate(TenantState state, Blueprint blueprint, SimulatedMessage message)
    {
        var posternConnector = blueprint.Items.OfType<ConnectorItem>().First(c => c.Direction == ConnectorDirection.Outbound).Name;
        var passes = new List<SimulationPass>();
        var accepted = state.AcceptedDomains.Select(d => (d.GetString("DomainName") ?? d.Name).ToLowerInvariant()).ToHashSet();
        var posternPasses = 0;
        var title = "as the message arrives in Exchange Online";
        for (var pass = 1; ; pass++)
        {
            var result = RuleEvaluator.Evaluate(state, message);
            if (result.RoutedTo is { } connector && TenantState.Same(connector, posternConnector))
            {
                posternPasses++;
                var hosts = state.OutboundConnector(connector)?.GetList("SmartHosts") ?? [];
                passes.Add(new SimulationPass(title, result,
                    $"to Postern through '{connector}' ({(hosts.Count == 0 ? "no smart host" : string.Join(", ", hosts))}{(result.RequireTls ? ", TLS required" : "")})"));
                if (posternPasses > 1)
                {
                    return new SimulationResult(passes,
                        $"would loop: the rules send the message Postern returned back to Postern; Postern refuses that pass with 554 5.4.6 (check that '{blueprint.Items.OfType<TransportRuleItem>().First().Name}' is enabled and first)",
                        posternPasses, Loops: true);
                }
                // Postern removes the relay key and stamps the tenant's loop token, then hands the message back.
                var headers = result.Message.Headers.Where(h => !h.Key.Equals(blueprint.Deployment.KeyHeader, StringComparison.OrdinalIgnoreCase)).ToList();
                headers.Add(new(blueprint.Deployment.LoopHeader, blueprint.Tenant.LoopToken));
                message = result.Message with { Headers = headers, SenderIp = blueprint.Region.EgressIPv4.FirstOrDefault() ?? result.Message.SenderIp };
                title = $"back from Postern through '{blueprint.Items.OfType<ConnectorItem>().First(c => c.Direction == ConnectorDirection.Inbound).Name}', with {blueprint.Deployment.LoopHeader}";
                continue;
            }
            string where;
            if (result.RoutedTo is { } other)
                where = $"out through the outbound connector '{other}'";
            else
            {
                var inside = result.Message.To.Where(r => accepted.Contains(r[(r.LastIndexOf('@') + 1)..].ToLowerInvariant())).ToArray();
                var outside = result.Message.To.Except(inside).ToArray();
                where = string.Join("; ", new[]
                {
                    inside.Length > 0 ? $"delivered to the mailbox of {string.Join(", ", inside)}" : null,
                    outside.Length > 0 ? $"sent to the Internet for {string.Join(", ", outside)}" : null,
                }.OfType<string>());
            }
            passes.Add(new SimulationPass(title, result, where));
            var outcome = posternPasses == 0
                ? "does not pass through Postern: no rule routes it to Postern's connector, so it is not scanned"
                : "passes through Postern once; no loop";
            return new SimulationResult(passes, outcome, posternPasses, Loops: false);
        }
    }

    /// <summary>The simulation as the command prints it.</summary>
    public static void Write(TextWriter output, SimulationResult result)
    {
        for (var i = 0; i < result.Passes.Count; i++)
        {
            var pass = result.Passes[i];
            output.WriteLine($"Pass {i + 1}, {pass.Title}:");
            foreach (var rule in pass.Rules.Rules)
            {
                var text = rule.Applied
                    ? $"applies: {string.Join("; ", rule.Reasons.DefaultIfEmpty("every message"))}; then {string.Join(", ", rule.Actions.DefaultIfEmpty("nothing"))}"
                    : $"does not apply: {string.Join("; ", rule.Reasons)}";
                output.WriteLine($"  rule '{rule.Rule}' (priority {rule.Priority}) {text}");
            }
            output.WriteLine($"  → {pass.Where}");
        }
        output.WriteLine($"Result: {result.Outcome}.");
    }

    /// <summary>Parses an IP for --sender-ip; null when the text is not one.</summary>
    public static IPAddress? ParseIp(string? text) => text is not null && IPAddress.TryParse(text, out var ip) ? ip : null;
}
