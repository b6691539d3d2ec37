using System.Globalization;
using Postern.Core.Configuration;

namespace Postern.Core.Scanning.Engines;

/// <summary>Why a domain was judged a look-alike of one of the tenant's domains.</summary>
/// <param name="Domain">The look-alike, lower-case ASCII (punycode for IDNs).</param>
/// <param name="Imitates">The tenant domain it imitates.</param>
/// <param name="Rule">Short rule name: homoglyph, embedded-domain, other-suffix, edit-distance-N, embedded-name.</param>
/// <param name="Explanation">The rule in words, for the trace.</param>
public sealed record LookAlike(string Domain, string Imitates, string Rule, string Explanation);

/// <summary>
/// Decides whether a sender domain imitates one of the tenant's own domains. The rules, tried in
/// order for each tenant domain (a domain that is a tenant domain or a subdomain of one never matches):
/// <list type="number">
/// <item><b>homoglyph</b>: the two look the same once reduced to a <see cref="Confusables.Skeleton"/>
/// (c0ntoso.com, cοntoso.com with a Greek ο, xn--… punycode, contoso.corn).</item>
/// <item><b>embedded-domain</b>: the whole tenant domain is written into another domain, as leading
/// labels (contoso.com.example.net) or with dashes (contoso-com.net).</item>
/// <item><b>other-suffix</b>: the same name under another public suffix (contoso.net, contoso.co.uk), when
/// <see cref="ImpersonationOptions.SameNameOtherSuffix"/> is on.</item>
/// <item><b>edit-distance</b>: the names (the label left of the public suffix, skeletons compared)
/// differ by one insertion, deletion, substitution or swap of neighbours when the tenant's name has at
/// least <see cref="ImpersonationOptions.MinLabelLengthForDistance1"/> letters, or by two when it has at
/// least <see cref="ImpersonationOptions.MinLabelLengthForDistance2"/> (contosso.com, cnotoso.com); shorter
/// names collide with unrelated domains by chance.</item>
/// <item><b>embedded-name</b>: the tenant's name is a dash-separated part of another name
/// (contoso-payroll.com, secure-contoso.com), for names of at least MinLabelLengthForDistance1 letters.</item>
/// </list>
/// The public suffix is approximated (last label, or last two when they look like co.uk / com.au, and
/// onmicrosoft.com, whose customers' names are the label before it): enough to find the name,
/// without shipping the Public Suffix List into this check.
/// </summary>
public static class LookAlikeDomains
{
    private static readonly HashSet<string> SecondLevelSuffixes =
        ["co", "com", "net", "org", "gov", "edu", "ac", "or", "ne", "go", "gob", "mil", "nom", "sch", "ltd", "plc", "gv", "int"];

    /// <summary>Hosting suffixes under which each customer has its own name: contoso.onmicrosoft.com is named "contoso", not "onmicrosoft".</summary>
    private static readonly string[] SharedSuffixes = ["mail.onmicrosoft.com", "onmicrosoft.com"];

    private static readonly IdnMapping Idn = new() { AllowUnassigned = true };

    /// <summary>The first tenant domain <paramref name="domain"/> imitates, or null when it imitates none (or is one).</summary>
    public static LookAlike? Check(string domain, IEnumerable<string> tenantDomains, ImpersonationOptions options)
    {
        var candidate = ToAscii(domain);
        if (candidate is null)
            return null;
        var tenants = tenantDomains.Select(ToAscii).OfType<string>().Distinct().ToList();
        if (tenants.Any(t => candidate == t || candidate.EndsWith("." + t, StringComparison.Ordinal)))
            return null;
        foreach (var tenant in tenants)
        {
            var found = Compare(candidate, tenant, options);
            if (found is not null)
                return found;
        }
        return null;
    }

    private static LookAlike? Compare(string candidate, string tenant, ImpersonationOptions options)
    {
        var candidateSkeleton = Confusables.Skeleton(ToUnicode(candidate));
        var tenantSkeleton = Confusables.Skeleton(ToUnicode(tenant));
        if (candidateSkeleton == tenantSkeleton)
            return new(candidate, tenant, "homoglyph", $"looks like {tenant} (look-alike characters{(candidate.Contains("xn--") ? $", shown as {ToUnicode(candidate)}" : "")})");

        if (candidateSkeleton.StartsWith(tenantSkeleton + ".", StringComparison.Ordinal) ||
            candidateSkeleton.Contains(tenantSkeleton.Replace('.', '-'), StringComparison.Ordinal))
            return new(candidate, tenant, "embedded-domain", $"has {tenant} written into it");

        var (candidateLabel, candidateSuffix) = Split(candidate);
        var (tenantLabel, tenantSuffix) = Split(tenant);
        var candidateName = Confusables.Skeleton(ToUnicode(candidateLabel));
        var tenantName = Confusables.Skeleton(ToUnicode(tenantLabel));
        if (candidateName.Length == 0 || tenantName.Length == 0)
            return null;
        if (candidateName == tenantName)
            return options.SameNameOtherSuffix && candidateSuffix != tenantSuffix
                ? new(candidate, tenant, "other-suffix", $"is the name of {tenant} under .{candidateSuffix}")
                : null;

        var distance = EditDistance(candidateName, tenantName, 2);
        if ((distance == 1 && tenantName.Length >= options.MinLabelLengthForDistance1) ||
            (distance == 2 && tenantName.Length >= options.MinLabelLengthForDistance2))
            return new(candidate, tenant, $"edit-distance-{distance}", $"differs from {tenant} by {distance} character{(distance == 1 ? "" : "s")}");

        if (tenantName.Length >= options.MinLabelLengthForDistance1 && candidateName.Split('-').Contains(tenantName))
            return new(candidate, tenant, "embedded-name", $"uses the name of {tenant} ('{tenantLabel}') in another domain");
        return null;
    }

    /// <summary>(name, public suffix) of a domain; the name is the label left of the suffix.</summary>
    internal static (string Name, string Suffix) Split(string domain)
    {
        foreach (var shared in SharedSuffixes)
        {
            if (domain.EndsWith("." + shared, StringComparison.Ordinal))
            {
                var rest = domain[..^(shared.Length + 1)];
                return (rest[(rest.LastIndexOf('.') + 1)..], shared);
            }
        }
        var labels = domain.Split('.');
        if (labels.Length < 2)
            return (domain, "");
        var suffixLabels = labels.Length >= 3 && labels[^1].Length == 2 && SecondLevelSuffixes.Contains(labels[^2]) ? 2 : 1;
        return (labels[^(suffixLabels + 1)], string.Join('.', labels[^suffixLabels..]));
    }

    /// <summary>Optimal-string-alignment distance (Levenshtein plus swaps of neighbours), or <paramref name="cap"/> + 1 once it is exceeded.</summary>
    public static int EditDistance(string a, string b, int cap = int.MaxValue - 1)
    {
        cap = Math.Min(cap, int.MaxValue - 1);
        if (Math.Abs(a.Length - b.Length) > cap)
            return cap + 1;
        var previous2 = new int[b.Length + 1];
        var previous = new int[b.Length + 1];
        var current = new int[b.Length + 1];
        for (var j = 0; j <= b.Length; j++)
            previous[j] = j;
        for (var i = 1; i <= a.Length; i++)
        {
            current[0] = i;
            var rowMin = current[0];
            for (var j = 1; j <= b.Length; j++)
            {
                var cost = a[i - 1] == b[j - 1] ? 0 : 1;
                var value = Math.Min(Math.Min(previous[j] + 1, current[j - 1] + 1), previous[j - 1] + cost);
                if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
                    value = Math.Min(value, previous2[j - 2] + 1);
                current[j] = value;
                rowMin = Math.Min(rowMin, value);
            }
            if (rowMin > cap)
                return cap + 1;
            (previous2, previous, current) = (previous, current, previous2);
        }
        return Math.Min(previous[b.Length], cap + 1);
    }

    /// <summary>Lower-case ASCII (punycode) form, or null for something that is not a domain.</summary>
    internal static string? ToAscii(string domain)
    {
        var text = domain.Trim().TrimEnd('.');
        if (text.Length is 0 or > 253 || text.StartsWith('['))
            return null;
        try
        {
            return Idn.GetAscii(text).ToLowerInvariant();
        }
        catch (ArgumentException)
        {
            return text.ToLowerInvariant().All(c => c < 128) ? text.ToLowerInvariant() : null;
        }
    }

    /// <summary>The Unicode form of a punycode domain (what the reader sees), or the input when it cannot be decoded.</summary>
    internal static string ToUnicode(string ascii)
    {
        if (!ascii.Contains("xn--", StringComparison.Ordinal))
            return ascii;
        try
        {
            return Idn.GetUnicode(ascii);
        }
        catch (ArgumentException)
        {
            return ascii;
        }
    }
}
