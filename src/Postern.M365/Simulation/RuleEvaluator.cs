using System.Net;
using System.Text.RegularExpressions;
using Postern.M365.Exo;
using Postern.M365.Reconcile;

namespace Postern.M365.Simulation;

/// <summary>A message as the transport rules see it: envelope, header fields, the last hop's address and its SCL.</summary>
public sealed record SimulatedMessage
{
    public required string From { get; init; }

    public required IReadOnlyList<string> To { get; init; }

    /// <summary>Header fields, name and unfolded value, in order; names compare without case.</summary>
    public IReadOnlyList<KeyValuePair<string, string>> Headers { get; init; } = [];

    /// <summary>The address of the last hop before Exchange Online (what SenderIpRanges is matched against).</summary>
    public IPAddress? SenderIp { get; init; }

    public int? Scl { get; init; }

    /// <summary>Sent by a user of the tenant over an authenticated connection (FromScope InOrganization needs it).</summary>
    public bool Authenticated { get; init; }

    public IEnumerable<string> HeaderValues(string name) =>
        Headers.Where(h => h.Key.Equals(name, StringComparison.OrdinalIgnoreCase)).Select(h => h.Value);
}

/// <summary>One rule's outcome for a message: whether it applied, and why or why not, in words.</summary>
public sealed record RuleOutcome(string Rule, int Priority, bool Applied, IReadOnlyList<string> Reasons, IReadOnlyList<string> Actions);

/// <summary>A pass through the tenant's rules: each rule's outcome, the message as the rules left it, and where they routed it.</summary>
public sealed record RulePass(IReadOnlyList<RuleOutcome> Rules, SimulatedMessage Message, string? RoutedTo, bool RequireTls);

/// <summary>
/// Postern's own reading of Exchange Online transport rules, from their documented semantics (office-docs-powershell
/// New-TransportRule.md, OfficeDocs-Exchange conditions-and-exceptions.md, mail-flow-rules.md): enabled rules in
/// priority order (0 first); a rule applies when all its conditions hold (the values of one condition: any) and no
/// exception holds; a rule in Audit mode applies nothing; its actions change the message the later rules see; stop
/// processing ends the pass. Words match as whole words or phrases, without case; patterns are regular expressions
/// without case; SenderDomainIs and RecipientDomainIs match the domain and its subdomains. It is independent of the
/// emulator's evaluator on purpose: tests run both on the same cases.
/// </summary>
public static class RuleEvaluator
{
    /// <summary>Conditions and exceptions the simulation reads; a rule that sets any other one is reported, not guessed.</summary>
    public static readonly IReadOnlySet<string> Simulated = new HashSet<string>(StringComparer.OrdinalIgnoreCase)
    {
        "HeaderContainsMessageHeader", "HeaderContainsWords", "HeaderMatchesMessageHeader", "HeaderMatchesPatterns",
        "SenderDomainIs", "RecipientDomainIs", "FromScope", "SentToScope", "From", "SentTo", "SenderIpRanges", "SCLOver",
    };

    public static RulePass Evaluate(TenantState state, SimulatedMessage message)
    {
        var accepted = state.AcceptedDomains.Select(d => (d.GetString("DomainName") ?? d.Name).ToLowerInvariant()).ToHashSet();
        var outcomes = new List<RuleOutcome>();
        string? routedTo = null;
        var requireTls = false;
        foreach (var rule in state.TransportRules)
        {
            var priority = rule.GetInt("Priority") ?? 0;
            if (!Planner.IsEnabled(rule))
            {
                outcomes.Add(new RuleOutcome(rule.Name, priority, false, ["disabled"], []));
                continue;
            }
            var unsupported = ConditionNames(rule).Where(n => !Simulated.Contains(n.StartsWith("ExceptIf", StringComparison.Ordinal) ? n[8..] : n)).ToArray();
            if (unsupported.Length > 0)
            {
                outcomes.Add(new RuleOutcome(rule.Name, priority, false, [$"not simulated: {string.Join(", ", unsupported)}"], []));
                continue;
            }
            var reasons = new List<string>();
            if (!Conditions(rule, "", message, accepted, reasons, all: true))
            {
                outcomes.Add(new RuleOutcome(rule.Name, priority, false, reasons, []));
                continue;
            }
            var exceptions = new List<string>();
            if (Conditions(rule, "ExceptIf", message, accepted, exceptions, all: false))
            {
                outcomes.Add(new RuleOutcome(rule.Name, priority, false, [.. reasons, .. exceptions.Select(e => "except: " + e)], []));
                continue;
            }
            if (TenantState.Same(rule.GetString("Mode"), "Audit") || TenantState.Same(rule.GetString("Mode"), "AuditAndNotify"))
            {
                outcomes.Add(new RuleOutcome(rule.Name, priority, false, [.. reasons, "audit mode: no action taken"], []));
                continue;
            }
            var actions = new List<string>();
            message = Apply(rule, message, actions, ref routedTo, ref requireTls);
            var stop = rule.GetBool("StopRuleProcessing") == true;
            if (stop)
                actions.Add("stop processing more rules");
            outcomes.Add(new RuleOutcome(rule.Name, priority, true, reasons, actions));
            if (stop)
                break;
        }
        return new RulePass(outcomes, message, routedTo, requireTls);
    }

    /// <summary>The condition and exception parameters the rule sets.</summary>
    private static IEnumerable<string> ConditionNames(ExoObject rule) =>
        CmdletReference.Default.Parameters("New-TransportRule")
            .Where(p => p.RulePart is "condition" or "exception" && ValueCompare.IsSet(rule, p.Name))
            .Select(p => p.Name);

    /// <summary>Conditions (prefix "") must all hold; exceptions (prefix "ExceptIf") need one to.</summary>
    private static bool Conditions(ExoObject rule, string prefix, SimulatedMessage message, HashSet<string> accepted, List<string> reasons, bool all)
    {
        var results = new List<bool>();
        void Check(bool holds, string because)
        {
            results.Add(holds);
            // A condition is told whether it holds or not (the text says which); an exception only when it holds.
            if (all || holds)
                reasons.Add(because);
        }
        string P(string name) => prefix + name;
        if (rule.GetString(P("HeaderContainsMessageHeader")) is { Length: > 0 } header)
        {
            var words = rule.GetList(P("HeaderContainsWords"));
            var match = message.HeaderValues(header).SelectMany(v => words.Where(w => ContainsWord(v, w))).FirstOrDefault();
            Check(match is not null, match is not null ? $"header {header} contains '{Mask(match)}'" : $"header {header} contains none of its words");
        }
        if (rule.GetString(P("HeaderMatchesMessageHeader")) is { Length: > 0 } matched)
        {
            var patterns = rule.GetList(P("HeaderMatchesPatterns"));
            var holds = message.HeaderValues(matched).Any(v => patterns.Any(p => Regex.IsMatch(v, p, RegexOptions.IgnoreCase | RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1))));
            Check(holds, $"header {matched} {(holds ? "matches" : "matches none of")} its patterns");
        }
        if (rule.GetList(P("SenderDomainIs")) is { Count: > 0 } senderDomains)
        {
            var domain = DomainOf(message.From);
            Check(senderDomains.Any(d => InDomain(domain, d)), $"sender domain {domain} {(senderDomains.Any(d => InDomain(domain, d)) ? "is" : "is not")} {string.Join(" or ", senderDomains)}");
        }
        if (rule.GetList(P("RecipientDomainIs")) is { Count: > 0 } recipientDomains)
        {
            var hit = message.To.FirstOrDefault(r => recipientDomains.Any(d => InDomain(DomainOf(r), d)));
            Check(hit is not null, hit is not null ? $"recipient {hit} is in {string.Join(" or ", recipientDomains)}" : $"no recipient in {string.Join(" or ", recipientDomains)}");
        }
        if (rule.GetString(P("FromScope")) is { Length: > 0 } fromScope)
        {
            var inside = message.Authenticated && accepted.Contains(DomainOf(message.From));
            var holds = TenantState.Same(fromScope, "InOrganization") ? inside : !inside;
            Check(holds, $"the sender is {(inside ? "inside" : "outside")} the organisation (FromScope {fromScope})");
        }
        if (rule.GetString(P("SentToScope")) is { Length: > 0 } toScope)
        {
            var inside = message.To.Any(r => accepted.Contains(DomainOf(r)));
            var holds = TenantState.Same(toScope, "InOrganization") ? inside : message.To.Any(r => !accepted.Contains(DomainOf(r)));
            Check(holds, $"a recipient is {(holds == TenantState.Same(toScope, "InOrganization") ? "inside" : "outside")} the organisation (SentToScope {toScope})");
        }
        if (rule.GetList(P("From")) is { Count: > 0 } senders)
        {
            var holds = senders.Contains(message.From, StringComparer.OrdinalIgnoreCase);
            Check(holds, $"the sender {message.From} {(holds ? "is" : "is not")} listed");
        }
        if (rule.GetList(P("SentTo")) is { Count: > 0 } recipients)
        {
            var holds = message.To.Any(r => recipients.Contains(r, StringComparer.OrdinalIgnoreCase));
            Check(holds, holds ? "a recipient is listed" : "no recipient is listed");
        }
        if (rule.GetList(P("SenderIpRanges")) is { Count: > 0 } ranges)
        {
            var holds = message.SenderIp is { } ip && ranges.Any(r => InRange(ip, r));
            Check(holds, $"the last hop {(message.SenderIp?.ToString() ?? "(unknown)")} is {(holds ? "" : "not ")}in {string.Join(", ", ranges)}");
        }
        if (rule.GetInt(P("SCLOver")) is { } scl)
        {
            var holds = message.Scl is { } s && s >= scl;
            Check(holds, $"SCL {(message.Scl?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "(none)")} {(holds ? "≥" : "<")} {scl}");
        }
        // No condition at all is Exchange's "apply to all messages"; no exception excepts nothing.
        return all ? results.All(r => r) : results.Any(r => r);
    }

    /// <summary>Actions the simulation carries out; others a rule sets are listed as not simulated.</summary>
    private static readonly HashSet<string> SimulatedActions = new(StringComparer.OrdinalIgnoreCase)
    {
        "RemoveHeader", "SetHeaderName", "SetHeaderValue", "SetSCL", "RouteMessageOutboundConnector", "RouteMessageOutboundRequireTls", "StopRuleProcessing",
    };

    private static SimulatedMessage Apply(ExoObject rule, SimulatedMessage message, List<string> actions, ref string? routedTo, ref bool requireTls)
    {
        var others = CmdletReference.Default.Parameters("New-TransportRule")
            .Where(p => p.RulePart == "action" && !SimulatedActions.Contains(p.Name) && ValueCompare.IsSet(rule, p.Name) && rule.GetBool(p.Name) != false)
            .Select(p => p.Name).ToArray();
        var headers = message.Headers.ToList();
        if (rule.GetString("RemoveHeader") is { Length: > 0 } remove)
        {
            headers.RemoveAll(h => h.Key.Equals(remove, StringComparison.OrdinalIgnoreCase));
            actions.Add($"remove header {remove}");
        }
        if (rule.GetString("SetHeaderName") is { Length: > 0 } setName)
        {
            headers.RemoveAll(h => h.Key.Equals(setName, StringComparison.OrdinalIgnoreCase));
            headers.Add(new(setName, rule.GetString("SetHeaderValue") ?? ""));
            actions.Add($"set header {setName}");
        }
        if (rule.GetInt("SetSCL") is { } scl)
        {
            message = message with { Scl = scl };
            actions.Add($"set SCL {scl}");
        }
        if (rule.GetString("RouteMessageOutboundConnector") is { Length: > 0 } connector)
        {
            routedTo = connector;
            actions.Add($"route through the outbound connector '{connector}'");
        }
        if (rule.GetBool("RouteMessageOutboundRequireTls") == true)
        {
            requireTls = true;
            actions.Add("require TLS for delivery");
        }
        if (others.Length > 0)
            actions.Add($"not simulated: {string.Join(", ", others)}");
        return message with { Headers = headers };
    }

    /// <summary>Exchange's word match: without case, the word or phrase bounded by the value's ends, spaces or punctuation.</summary>
    public static bool ContainsWord(string value, string word)
    {
        if (word.Length == 0)
            return false;
        for (var at = value.IndexOf(word, StringComparison.OrdinalIgnoreCase); at >= 0; at = value.IndexOf(word, at + 1, StringComparison.OrdinalIgnoreCase))
        {
            var before = at == 0 || !char.IsLetterOrDigit(value[at - 1]);
            var after = at + word.Length == value.Length || !char.IsLetterOrDigit(value[at + word.Length]);
            if (before && after)
                return true;
        }
        return false;
    }

    /// <summary>Loop tokens and keys are secrets: a long hex word is shown by its first characters only.</summary>
    private static string Mask(string word) => word.Length >= 16 && word.All(Uri.IsHexDigit) ? word[..4] + "…" : word;

    private static string DomainOf(string address) => address[(address.LastIndexOf('@') + 1)..].ToLowerInvariant();

    private static bool InDomain(string domain, string parent) =>
        domain.Equals(parent, StringComparison.OrdinalIgnoreCase) || domain.EndsWith("." + parent, StringComparison.OrdinalIgnoreCase);

    /// <summary>A single address, a CIDR network or an a-b range, as SenderIpRanges takes them.</summary>
    private static bool InRange(IPAddress ip, string range)
    {
        if (range.Contains('-'))
        {
            var parts = range.Split('-', 2);
            if (!IPAddress.TryParse(parts[0], out var low) || !IPAddress.TryParse(parts[1], out var high) || low.AddressFamily != ip.AddressFamily)
                return false;
            var value = new System.Numerics.BigInteger(ip.GetAddressBytes(), isUnsigned: true, isBigEndian: true);
            return value >= new System.Numerics.BigInteger(low.GetAddressBytes(), true, true) && value <= new System.Numerics.BigInteger(high.GetAddressBytes(), true, true);
        }
        if (range.Contains('/'))
            return IPNetwork.TryParse(range, out var network) && network.Contains(ip);
        return IPAddress.TryParse(range, out var single) && single.Equals(ip);
    }
}
