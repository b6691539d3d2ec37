using MimeKit;
using Postern.Core.Configuration;

namespace Postern.Core.Scanning.Engines;

/// <summary>
/// Catches mail that pretends to come from inside the tenant:
/// <list type="bullet">
/// <item><b>Display-name impersonation</b>: the From (or Sender) display name is one of the tenant's
/// VIPs (<see cref="ScanContext.Vips"/>) — compared after <see cref="Confusables.Fold"/> and ignoring
/// case, spacing, punctuation and accents, also as "Doe, Jane" or with additions such as
/// "Jane Doe (CEO)" — or shows an address in a tenant domain, while the actual address is outside
/// the tenant's domains. A colleague who shares a VIP's name and writes from a tenant domain is not
/// flagged. Without any tenant domains there is no "outside", so the check is skipped.</item>
/// <item><b>Look-alike domains</b>: the domains of From, Reply-To, Sender and the envelope sender are
/// compared with the tenant's domains by the rules of <see cref="LookAlikeDomains"/>.</item>
/// </list>
/// </summary>
public sealed class ImpersonationEngine(ImpersonationOptions options) : IScanEngine
{
    public const string EngineName = "impersonation";

    public ImpersonationEngine()
        : this(new ImpersonationOptions())
    {
    }

    public string Name => EngineName;

    public ValueTask<IReadOnlyList<Finding>> ScanAsync(ScanContext context, CancellationToken cancellationToken)
    {
        try
        {
            var findings = new List<Finding>();
            findings.AddRange(CheckDisplayNames(context.Message, context.TenantDomains, context.Vips));
            findings.AddRange(CheckDomains(context.Message, context.Envelope.MailFrom, context.TenantDomains));
            return ValueTask.FromResult<IReadOnlyList<Finding>>(findings);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            return ValueTask.FromResult<IReadOnlyList<Finding>>(
                [new Finding(EngineName, FindingKinds.EngineUnavailable, $"impersonation check failed ({e.GetType().Name}: {e.Message})")]);
        }
    }

    /// <summary>Display-name findings for the From and Sender mailboxes.</summary>
    public IReadOnlyList<Finding> CheckDisplayNames(MimeMessage message, IReadOnlyList<string> tenantDomains, IReadOnlyList<string> vips)
    {
        var findings = new List<Finding>();
        if (tenantDomains.Count == 0)
            return findings;
        var vipNames = vips.Where(v => !string.IsNullOrWhiteSpace(v)).Select(v => (Name: v, Tokens: Tokens(v))).Where(v => v.Tokens.Length > 0).ToList();
        var senders = message.From.Mailboxes.Concat(message.Sender is null ? [] : [message.Sender]);
        var reported = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        foreach (var mailbox in senders)
        {
            if (string.IsNullOrWhiteSpace(mailbox.Name) || IsTenantAddress(mailbox.Address, tenantDomains) || !reported.Add(mailbox.Address))
                continue;
            var shown = Tokens(mailbox.Name);
            var vip = vipNames.FirstOrDefault(v => NameMatches(shown, v.Tokens));
            if (vip.Name is not null)
            {
                findings.Add(new Finding(EngineName, FindingKinds.DisplayNameImpersonation,
                    $"display name '{mailbox.Name}' matches VIP '{vip.Name}' but the address {mailbox.Address} is outside the tenant's domains",
                    Subject: mailbox.Address));
                continue;
            }
            var shownAddress = ShownTenantAddress(mailbox.Name, tenantDomains);
            if (shownAddress is not null && !shownAddress.Equals(mailbox.Address, StringComparison.OrdinalIgnoreCase))
                findings.Add(new Finding(EngineName, FindingKinds.DisplayNameImpersonation,
                    $"display name shows the tenant address {shownAddress} but the address is {mailbox.Address}",
                    Subject: mailbox.Address));
        }
        return findings;
    }

    /// <summary>Look-alike findings for the sender domains of the headers and the envelope, one per distinct domain.</summary>
    public IReadOnlyList<Finding> CheckDomains(MimeMessage message, string? envelopeSender, IReadOnlyList<string> tenantDomains)
    {
        var findings = new List<Finding>();
        if (tenantDomains.Count == 0)
            return findings;
        var sources = new List<(string Domain, string Where)>();
        foreach (var m in message.From.Mailboxes)
            sources.Add((m.Domain, "From"));
        foreach (var m in message.ReplyTo.Mailboxes)
            sources.Add((m.Domain, "Reply-To"));
        if (message.Sender is { } sender)
            sources.Add((sender.Domain, "Sender"));
        if (!string.IsNullOrEmpty(envelopeSender) && envelopeSender.LastIndexOf('@') is var at and > 0)
            sources.Add((envelopeSender[(at + 1)..], "envelope sender"));

        foreach (var group in sources.Where(s => !string.IsNullOrWhiteSpace(s.Domain)).GroupBy(s => s.Domain.Trim().ToLowerInvariant()))
        {
            var lookAlike = LookAlikeDomains.Check(group.Key, tenantDomains, options);
            if (lookAlike is null)
                continue;
            var where = string.Join(", ", group.Select(g => g.Where).Distinct());
            findings.Add(new Finding(EngineName, FindingKinds.LookAlikeDomain,
                $"{where} domain {lookAlike.Domain} {lookAlike.Explanation} [{lookAlike.Rule}]",
                Subject: lookAlike.Domain));
        }
        return findings;
    }

    /// <summary>Whether a display name (as tokens) names the VIP: whole, spacing ignored, surname first, or with additions around it.</summary>
    internal static bool NameMatches(string[] shown, string[] vip)
    {
        if (shown.Length == 0)
            return false;
        if (string.Concat(shown) == string.Concat(vip))
            return true;
        if (vip.Length < 2)
            return false; // one word ("Alex") is too common to find inside longer names
        if (ContainsRun(shown, vip))
            return true;
        return vip.Length == 2 && ContainsRun(shown, [vip[1], vip[0]]);
    }

    private static bool ContainsRun(string[] haystack, string[] needle)
    {
        for (var i = 0; i + needle.Length <= haystack.Length; i++)
            if (haystack.AsSpan(i, needle.Length).SequenceEqual(needle))
                return true;
        return false;
    }

    /// <summary>A name as comparable words: skeleton form, split on anything that is not a letter or digit.</summary>
    internal static string[] Tokens(string name)
    {
        var skeleton = Confusables.Skeleton(name);
        return skeleton.SplitWhere(c => !char.IsLetterOrDigit(c));
    }

    private static string? ShownTenantAddress(string displayName, IReadOnlyList<string> tenantDomains)
    {
        foreach (var word in displayName.Split([' ', '<', '>', '"', '\'', '(', ')', ',', ';', '[', ']'], StringSplitOptions.RemoveEmptyEntries))
        {
            var at = word.LastIndexOf('@');
            if (at > 0 && IsTenantAddress(word, tenantDomains))
                return word;
        }
        return null;
    }

    private static bool IsTenantAddress(string address, IReadOnlyList<string> tenantDomains)
    {
        var at = address.LastIndexOf('@');
        if (at < 0)
            return false;
        var domain = LookAlikeDomains.ToAscii(address[(at + 1)..]);
        if (domain is null)
            return false;
        return tenantDomains.Any(t => LookAlikeDomains.ToAscii(t) is { } tenant &&
            (domain == tenant || domain.EndsWith("." + tenant, StringComparison.Ordinal)));
    }
}

internal static class StringSplitExtensions
{
    /// <summary>Splits on every character the predicate picks, dropping empty pieces.</summary>
    public static string[] SplitWhere(this string text, Func<char, bool> separator)
    {
        var parts = new List<string>();
        var start = -1;
        for (var i = 0; i <= text.Length; i++)
        {
            var isSeparator = i == text.Length || separator(text[i]);
            if (!isSeparator && start < 0)
                start = i;
            else if (isSeparator && start >= 0)
            {
                parts.Add(text[start..i]);
                start = -1;
            }
        }
        return [.. parts];
    }
}
