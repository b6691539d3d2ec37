using System.Net;
using System.Text.RegularExpressions;

namespace Postern.ExoEmulator.MailFlow;

/// <summary>A message in the emulated transport pipeline.</summary>
public sealed class MailItem
{
    public required string MailFrom { get; init; }

    public required IReadOnlyList<string> Recipients { get; init; }

    /// <summary>Header fields in order (name, value); rules read and change them.</summary>
    public List<(string Name, string Value)> Headers { get; init; } = [];

    /// <summary>The connecting host's address (SenderIpRanges: "the last hop before reaching the service").</summary>
    public IPAddress? ClientAddress { get; init; }

    public int? Scl { get; set; }

    /// <summary>Submitted by a signed-in user, or over a connector that makes the mail the organisation's.</summary>
    public bool Authenticated { get; init; }
}

/// <summary>
/// What the tenant's rules did to a message: the rules applied in order, the connector they routed it to, and the
/// RuleErrorAction of the rule that routed it (Ignore, Exchange's default, or Defer).
/// </summary>
public sealed record RuleRun(IReadOnlyList<string> Applied, string? Connector, bool RequireTls, string ErrorAction = "Ignore");

/// <summary>
/// The emulator's transport rules engine, written from Microsoft's documentation independently of Postern's own
/// simulation (tests compare the two): rules in priority order, enabled and enforced ones only; every condition must
/// hold and no exception; header words are whole words or phrases without case, patterns are case-insensitive
/// regular expressions, sender and recipient domains match subdomains; actions change the message the next rules see;
/// StopRuleProcessing ends the run.
/// </summary>
public static class TransportRuleEngine
{
    internal static RuleRun Run(IReadOnlyList<ExoRecord> rules, IReadOnlySet<string> acceptedDomains, MailItem mail)
    {
        var applied = new List<string>();
        string? connector = null;
        var tls = false;
        var errorAction = "Ignore";
        foreach (var rule in rules)
        {
            if (!"Enabled".Equals(rule.Text("State"), StringComparison.OrdinalIgnoreCase))
                continue;
            if (!AllConditions(rule, mail, acceptedDomains) || AnyException(rule, mail, acceptedDomains))
                continue;
            var mode = rule.Text("Mode") ?? "Enforce";
            if (!mode.Equals("Enforce", StringComparison.OrdinalIgnoreCase))
                continue;
            applied.Add(rule.Name);
            if (rule.Text("RemoveHeader") is { Length: > 0 } removed)
                mail.Headers.RemoveAll(h => h.Name.Equals(removed, StringComparison.OrdinalIgnoreCase));
            if (rule.Text("SetHeaderName") is { Length: > 0 } name)
            {
                mail.Headers.RemoveAll(h => h.Name.Equals(name, StringComparison.OrdinalIgnoreCase));
                mail.Headers.Add((name, rule.Text("SetHeaderValue") ?? ""));
            }
            if (rule.Props["SetSCL"] is { } scl)
                mail.Scl = scl.GetValue<int>();
            if (rule.Text("RouteMessageOutboundConnector") is { Length: > 0 } target)
            {
                connector = target;
                errorAction = rule.Text("RuleErrorAction") ?? "Ignore";
            }
            if (rule.Bool("RouteMessageOutboundRequireTls") == true)
                tls = true;
            if (rule.Bool("StopRuleProcessing") == true)
                break;
        }
        return new RuleRun(applied, connector, tls, errorAction);
    }

    private static bool AllConditions(ExoRecord rule, MailItem mail, IReadOnlySet<string> accepted) =>
        Predicates(rule, "", mail, accepted).All(p => p);

    private static bool AnyException(ExoRecord rule, MailItem mail, IReadOnlySet<string> accepted) =>
        Predicates(rule, "ExceptIf", mail, accepted).Any(p => p);

    /// <summary>The outcome of each predicate the rule sets (with or without the ExceptIf prefix).</summary>
    private static IEnumerable<bool> Predicates(ExoRecord rule, string prefix, MailItem mail, IReadOnlySet<string> accepted)
    {
        string Name(string n) => prefix + n;
        var senderDomain = Domain(mail.MailFrom);
        if (rule.IsSet(Name("HeaderContainsMessageHeader")))
        {
            var field = rule.Text(Name("HeaderContainsMessageHeader"))!;
            var words = rule.List(Name("HeaderContainsWords"));
            yield return mail.Headers.Where(h => h.Name.Equals(field, StringComparison.OrdinalIgnoreCase))
                .Any(h => words.Any(w => Regex.IsMatch(h.Value, $@"(?<![\p{{L}}\p{{N}}]){Regex.Escape(w)}(?![\p{{L}}\p{{N}}])", RegexOptions.IgnoreCase)));
        }
        if (rule.IsSet(Name("HeaderMatchesMessageHeader")))
        {
            var field = rule.Text(Name("HeaderMatchesMessageHeader"))!;
            var patterns = rule.List(Name("HeaderMatchesPatterns"));
            yield return mail.Headers.Where(h => h.Name.Equals(field, StringComparison.OrdinalIgnoreCase))
                .Any(h => patterns.Any(p => Regex.IsMatch(h.Value, p, RegexOptions.IgnoreCase)));
        }
        if (rule.IsSet(Name("SenderDomainIs")))
            yield return rule.List(Name("SenderDomainIs")).Any(d => Within(senderDomain, d));
        if (rule.IsSet(Name("RecipientDomainIs")))
            yield return mail.Recipients.Any(r => rule.List(Name("RecipientDomainIs")).Any(d => Within(Domain(r), d)));
        if (rule.IsSet(Name("FromScope")))
        {
            var inOrganization = mail.Authenticated && accepted.Contains(senderDomain);
            yield return rule.Text(Name("FromScope"))!.Equals("InOrganization", StringComparison.OrdinalIgnoreCase) == inOrganization;
        }
        if (rule.IsSet(Name("SentToScope")))
        {
            var wantInside = rule.Text(Name("SentToScope"))!.Equals("InOrganization", StringComparison.OrdinalIgnoreCase);
            yield return mail.Recipients.Any(r => accepted.Contains(Domain(r)) == wantInside);
        }
        if (rule.IsSet(Name("From")))
            yield return rule.List(Name("From")).Any(a => a.Equals(mail.MailFrom, StringComparison.OrdinalIgnoreCase));
        if (rule.IsSet(Name("SentTo")))
            yield return mail.Recipients.Any(r => rule.List(Name("SentTo")).Any(a => a.Equals(r, StringComparison.OrdinalIgnoreCase)));
        if (rule.IsSet(Name("SenderIpRanges")))
            yield return mail.ClientAddress is { } ip && rule.List(Name("SenderIpRanges")).Any(r => InRange(ip, r));
        if (rule.Props[Name("SCLOver")] is { } over)
            yield return mail.Scl is { } s && s >= over.GetValue<int>();
    }

    private static string Domain(string address) => address[(address.LastIndexOf('@') + 1)..].ToLowerInvariant();

    private static bool Within(string domain, string parent) =>
        domain.Equals(parent, StringComparison.OrdinalIgnoreCase) || domain.EndsWith("." + parent.ToLowerInvariant(), StringComparison.Ordinal);

    private static bool InRange(IPAddress ip, string range)
    {
        if (range.Contains('/'))
            return IPNetwork.TryParse(range, out var network) && network.Contains(ip);
        if (range.Split('-') is [var from, var to] && IPAddress.TryParse(from, out var low) && IPAddress.TryParse(to, out var high))
        {
            var bytes = ip.GetAddressBytes();
            return bytes.Length == low.GetAddressBytes().Length
                && ((ReadOnlySpan<byte>)bytes).SequenceCompareTo(low.GetAddressBytes()) >= 0
                && ((ReadOnlySpan<byte>)bytes).SequenceCompareTo(high.GetAddressBytes()) <= 0;
        }
        return IPAddress.TryParse(range, out var single) && single.Equals(ip);
    }
}
