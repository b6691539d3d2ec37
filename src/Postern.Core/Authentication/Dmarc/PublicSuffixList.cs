using System.Globalization;
using System.Resources;

namespace Postern.Core.Authentication;

/// <summary>
/// The Public Suffix List (publicsuffix.org), which DMARC uses to find a domain's Organizational Domain
/// (RFC 7489 §3.2): the registrable domain, one label below the longest public suffix. The list ships
/// inside Postern (PublicSuffixListData.resx, MPL-2.0) so that DMARC never depends on a download at run time.
/// </summary>
public sealed class PublicSuffixList
{
    private static readonly Lazy<PublicSuffixList> Embedded = new(() => Parse(EmbeddedText()));

    private readonly HashSet<string> _rules;
    private readonly HashSet<string> _wildcards;
    private readonly HashSet<string> _exceptions;

    private PublicSuffixList(HashSet<string> rules, HashSet<string> wildcards, HashSet<string> exceptions)
    {
        _rules = rules;
        _wildcards = wildcards;
        _exceptions = exceptions;
    }

    /// <summary>The list Postern ships with.</summary>
    public static PublicSuffixList Default => Embedded.Value;

    /// <summary>The list file exactly as embedded (its licence notice included), so tests can compare it with upstream's.</summary>
    internal static string EmbeddedText() =>
        new ResourceManager("Postern.Core.Authentication.Dmarc.PublicSuffixListData", typeof(PublicSuffixList).Assembly)
            .GetString("List", CultureInfo.InvariantCulture)
        ?? throw new InvalidOperationException("The embedded Public Suffix List is missing from Postern.Core.");

    /// <summary>Number of rules, for diagnostics.</summary>
    public int Count => _rules.Count + _wildcards.Count + _exceptions.Count;

    /// <summary>Reads the list format: one rule per line, "//" comments, "*." wildcards, "!" exceptions (ICANN and private sections alike).</summary>
    public static PublicSuffixList Parse(string text)
    {
        var rules = new HashSet<string>(StringComparer.Ordinal);
        var wildcards = new HashSet<string>(StringComparer.Ordinal);
        var exceptions = new HashSet<string>(StringComparer.Ordinal);
        foreach (var raw in text.Split('\n'))
        {
            var line = raw.Trim();
            if (line.Length == 0 || line.StartsWith("//", StringComparison.Ordinal))
                continue;
            // Only the first whitespace-separated word of a line is the rule.
            var rule = line.Split(' ', '\t')[0];
            if (rule.StartsWith('!'))
                exceptions.Add(ToAscii(rule[1..]) ?? rule[1..]);
            else if (rule.StartsWith("*.", StringComparison.Ordinal))
                wildcards.Add(ToAscii(rule[2..]) ?? rule[2..]);
            else
                rules.Add(ToAscii(rule) ?? rule);
        }
        return new PublicSuffixList(rules, wildcards, exceptions);
    }

    /// <summary>
    /// The registrable domain (RFC 7489's Organizational Domain) of <paramref name="domain"/>, lower-cased, in
    /// the same form (Unicode or punycode) it was given; null when the name is itself a public suffix or is
    /// not a valid name (empty labels, a leading dot).
    /// </summary>
    public string? GetRegistrableDomain(string? domain)
    {
        if (string.IsNullOrEmpty(domain))
            return null;
        domain = domain.EndsWith('.') ? domain[..^1] : domain;
        var labels = domain.ToLowerInvariant().Split('.');
        if (labels.Any(l => l.Length == 0))
            return null;
        var ascii = new string[labels.Length];
        for (var i = 0; i < labels.Length; i++)
            ascii[i] = ToAscii(labels[i]) ?? labels[i];

        var suffixLabels = PublicSuffixLength(ascii);
        return suffixLabels >= labels.Length ? null : string.Join('.', labels[^(suffixLabels + 1)..]);
    }

    /// <summary>True when <paramref name="domain"/> is a public suffix (e.g. "com", "co.uk").</summary>
    public bool IsPublicSuffix(string domain) => domain.Length > 0 && GetRegistrableDomain(domain) is null
        && !domain.TrimEnd('.').Split('.').Any(l => l.Length == 0);

    /// <summary>How many labels on the right form the public suffix: the prevailing rule of the list's algorithm.</summary>
    private int PublicSuffixLength(string[] labels)
    {
        // Longest suffix first: the first rule that matches is the longest. Exception rules are more specific
        // than the wildcard they except, so they are met first and win, as the algorithm requires.
        for (var start = 0; start < labels.Length; start++)
        {
            var suffix = string.Join('.', labels[start..]);
            if (_exceptions.Contains(suffix))
                return labels.Length - start - 1;
            if (_rules.Contains(suffix))
                return labels.Length - start;
            if (start + 1 < labels.Length && _wildcards.Contains(string.Join('.', labels[(start + 1)..])))
                return labels.Length - start;
        }
        // The implicit "*" rule: an unlisted top-level domain is a public suffix.
        return 1;
    }

    private static string? ToAscii(string name)
    {
        if (name.All(char.IsAscii))
            return name.ToLowerInvariant();
        try
        {
            // IdnMapping makes no thread-safety promise for instances; one per (rare) non-ASCII name is cheap.
            return new IdnMapping { AllowUnassigned = true }.GetAscii(name).ToLowerInvariant();
        }
        catch (ArgumentException)
        {
            return null;
        }
    }
}
