using System.Text.RegularExpressions;
using MimeKit;
using Postern.Core.Scanning;
using Postern.Core.Spool;
using Postern.Smtp;

namespace Postern.Core.Policy;

/// <summary>Turns findings into a verdict per recipient: the first rule (by priority) whose conditions all hold decides.</summary>
public sealed class PolicyEvaluator(IReadOnlyList<PolicyRule> tenantRules)
{
    private static readonly TimeSpan RegexTimeout = TimeSpan.FromMilliseconds(200);
    private readonly PolicyRule[] _rules = tenantRules.Concat(DefaultPolicy.Rules).OrderBy(r => r.Priority).ToArray();

    public Verdict Evaluate(ScanContext context, IReadOnlyList<Finding> findings, EnvelopeRecipient recipient)
    {
        var facts = new MessageFacts(context, findings);
        foreach (var rule in _rules)
        {
            if (!Matches(rule.When, facts, recipient, out var because))
                continue;
            return new Verdict(rule.Then.Action, rule.Name, because, rule.Then.SubjectTag, Reply(rule.Then));
        }
        return Verdict.Clean;
    }

    private static SmtpReply? Reply(RuleAction action) => action.Action switch
    {
        VerdictAction.Reject => new SmtpReply(550, "5.7.1", action.ReplyText ?? "Message refused by policy"),
        VerdictAction.Defer => new SmtpReply(451, "4.7.1", action.ReplyText ?? "Message deferred by policy; please try again later"),
        _ => null,
    };

    private static bool Matches(RuleConditions when, MessageFacts facts, EnvelopeRecipient recipient, out string because)
    {
        var reasons = new List<string>();
        because = "";
        if (when.Direction is { } direction)
        {
            var actual = recipient.Route == RecipientRoute.Tenant ? "inbound" : "outbound";
            if (!direction.Equals(actual, StringComparison.OrdinalIgnoreCase))
                return false;
        }
        if (when.Sender is { Count: > 0 } senders && !senders.Any(p => Glob(p, facts.Context.Envelope.MailFrom)))
            return false;
        if (when.Recipient is { Count: > 0 } recipients && !recipients.Any(p => Glob(p, recipient.Address)))
            return false;
        if (when.SizeAbove is { } size)
        {
            if (facts.Context.Size <= size)
                return false;
            reasons.Add($"size {facts.Context.Size} > {size}");
        }
        if (when.Header is { } header)
        {
            var values = facts.Context.Message.Headers.Where(h => h.Field.Equals(header.Name, StringComparison.OrdinalIgnoreCase)).Select(h => h.Value);
            if (!values.Any(v => SafeRegex(header.Pattern, v)))
                return false;
            reasons.Add($"header {header.Name} matches /{header.Pattern}/");
        }
        if (when.BodyWords is { Count: > 0 } words)
        {
            var word = words.FirstOrDefault(w => facts.ContainsWord(w));
            if (word is null)
                return false;
            reasons.Add($"contains '{word}'");
        }
        if (when.AttachmentName is { Count: > 0 } names)
        {
            var name = facts.AttachmentNames.FirstOrDefault(n => names.Any(p => Glob(p, n)));
            if (name is null)
                return false;
            reasons.Add($"attachment '{name}'");
        }
        if (when.AttachmentType is { Count: > 0 } types)
        {
            var matched = facts.Findings.Where(f => f.Kind == FindingKinds.AttachmentType && f.FileType is { } id &&
                types.Contains(id, StringComparer.OrdinalIgnoreCase)).ToArray();
            if (matched.Length == 0)
                return false;
            reasons.AddRange(matched.Select(f => $"attachment type {f.Reason}"));
        }
        if (when.Finding is { Count: > 0 } kinds)
        {
            var matched = facts.Findings.Where(f => kinds.Contains(f.Kind, StringComparer.OrdinalIgnoreCase) || IsAuthenticationFamily(kinds, f.Kind)).ToArray();
            if (matched.Length == 0)
                return false;
            reasons.AddRange(matched.Select(f => $"{f.Engine}: {f.Reason}"));
        }
        if (when.SpamScoreAtLeast is { } threshold)
        {
            if (facts.SpamScore is not { } score || score < threshold)
                return false;
            reasons.Add($"spam score {score:0.0} ≥ {threshold:0.0}");
        }
        because = reasons.Count == 0 ? "all messages" : string.Join("; ", reasons.Distinct());
        return true;
    }

    /// <summary>"authentication" names the family: rules written before SPF, DKIM, DMARC and ARC had kinds of their own keep matching.</summary>
    private static bool IsAuthenticationFamily(IReadOnlyList<string> kinds, string kind) =>
        kind.StartsWith(FindingKinds.Authentication + "-", StringComparison.Ordinal) &&
        kinds.Contains(FindingKinds.Authentication, StringComparer.OrdinalIgnoreCase);

    /// <summary>Case-insensitive wildcard match: '*' any run, '?' one character.</summary>
    public static bool Glob(string pattern, string value) =>
        Regex.IsMatch(value, "^" + Regex.Escape(pattern).Replace(@"\*", ".*").Replace(@"\?", ".") + "$",
            RegexOptions.IgnoreCase | RegexOptions.CultureInvariant, RegexTimeout);

    private static bool SafeRegex(string pattern, string value)
    {
        try
        {
            return Regex.IsMatch(value, pattern, RegexOptions.IgnoreCase | RegexOptions.CultureInvariant, RegexTimeout);
        }
        catch (RegexMatchTimeoutException)
        {
            return false;
        }
    }

    /// <summary>What rules look at, computed once per message and only when a rule asks.</summary>
    private sealed class MessageFacts(ScanContext context, IReadOnlyList<Finding> findings)
    {
        private string? _text;
        private string[]? _attachmentNames;

        public ScanContext Context => context;
        public IReadOnlyList<Finding> Findings => findings;

        public double? SpamScore =>
            findings.Where(f => f.Kind == FindingKinds.SpamScore).Select(f => (double?)f.Score).Max();

        public IReadOnlyList<string> AttachmentNames => _attachmentNames ??=
            context.Message.BodyParts.OfType<MimePart>().Select(p => p.FileName).Where(n => !string.IsNullOrEmpty(n)).Select(n => n!).ToArray();

        public bool ContainsWord(string word)
        {
            _text ??= (context.Message.Subject ?? "") + "\n" + (context.Message.TextBody ?? StripTags(context.Message.HtmlBody ?? ""));
            return Regex.IsMatch(_text, @"\b" + Regex.Escape(word) + @"\b", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant, RegexTimeout);
        }

        private static string StripTags(string html) => Regex.Replace(html, "<[^>]*>", " ", RegexOptions.None, RegexTimeout);
    }
}
