using System.Globalization;

namespace Postern.Core.Authentication;

/// <summary>What a domain owner asks receivers to do with mail that fails DMARC (RFC 7489 §6.3 p= and sp=).</summary>
public enum DmarcPolicy
{
    None,
    Quarantine,
    Reject,
}

/// <summary>Identifier alignment mode (RFC 7489 §3.1): relaxed allows subdomains of the same Organizational Domain.</summary>
public enum DmarcAlignment
{
    Relaxed,
    Strict,
}

/// <summary>A parsed "v=DMARC1" policy record (RFC 7489 §6.3).</summary>
/// <param name="Policy">p=.</param>
/// <param name="SubdomainPolicy">sp=, when given: the policy for subdomains when the record was found at the Organizational Domain.</param>
/// <param name="Percent">pct=: the share of failing mail the policy applies to (0–100).</param>
/// <param name="DkimAlignment">adkim=.</param>
/// <param name="SpfAlignment">aspf=.</param>
/// <param name="AggregateReportUris">rua=.</param>
/// <param name="FailureReportUris">ruf=.</param>
/// <param name="FailureReportOptions">fo=.</param>
/// <param name="PolicyFromReportingAddress">p= was missing or invalid and the record is read as p=none because it has rua= (§6.6.3).</param>
/// <param name="Text">The record as published.</param>
public sealed record DmarcRecord(
    DmarcPolicy Policy,
    DmarcPolicy? SubdomainPolicy,
    int Percent,
    DmarcAlignment DkimAlignment,
    DmarcAlignment SpfAlignment,
    IReadOnlyList<string> AggregateReportUris,
    IReadOnlyList<string> FailureReportUris,
    string FailureReportOptions,
    bool PolicyFromReportingAddress,
    string Text)
{
    /// <summary>True for TXT strings that are DMARC records: those starting with the tag "v=DMARC1" (§6.6.3 step 3).</summary>
    public static bool IsDmarcRecord(string text)
    {
        var trimmed = text.TrimStart();
        if (!trimmed.StartsWith('v'))
            return false;
        var firstTag = trimmed.Split(';', 2)[0];
        var eq = firstTag.IndexOf('=');
        return eq > 0 && firstTag[..eq].Trim() == "v" && firstTag[(eq + 1)..].Trim() == "DMARC1";
    }

    /// <summary>
    /// Parses a record. Returns null with <paramref name="problem"/> set when no DMARC processing may be
    /// applied: a bad p= or sp= without a usable rua= (§6.6.3 step 6), or a malformed tag list. Unknown tags
    /// are ignored and bad optional values fall back to their defaults.
    /// </summary>
    public static DmarcRecord? TryParse(string text, out string? problem)
    {
        problem = null;
        if (!IsDmarcRecord(text))
        {
            problem = "the record does not start with v=DMARC1";
            return null;
        }
        var tags = DkimTagList.TryParse(text);
        if (tags is null)
        {
            problem = "the record is not a valid tag list";
            return null;
        }

        var rua = Uris(tags.GetValueOrDefault("rua"));
        var ruf = Uris(tags.GetValueOrDefault("ruf"));
        var policy = ParsePolicy(tags.GetValueOrDefault("p"));
        DmarcPolicy? subdomainPolicy = null;
        var subdomainPolicyValid = true;
        if (tags.TryGetValue("sp", out var sp))
        {
            subdomainPolicy = ParsePolicy(sp);
            subdomainPolicyValid = subdomainPolicy is not null;
        }
        var fromReportingAddress = false;
        if (policy is null || !subdomainPolicyValid)
        {
            if (!rua.Any(IsValidReportUri))
            {
                problem = policy is null
                    ? $"p={tags.GetValueOrDefault("p") ?? "(missing)"} is not none, quarantine or reject, and there is no rua= to fall back on"
                    : $"sp={sp} is not none, quarantine or reject, and there is no rua= to fall back on";
                return null;
            }
            policy = DmarcPolicy.None;
            subdomainPolicy = null;
            fromReportingAddress = true;
        }

        var percent = tags.TryGetValue("pct", out var pct) && int.TryParse(pct, NumberStyles.None, CultureInfo.InvariantCulture, out var p) && p <= 100 ? p : 100;
        return new DmarcRecord(policy.Value, subdomainPolicy, percent, Alignment(tags.GetValueOrDefault("adkim")), Alignment(tags.GetValueOrDefault("aspf")),
            rua, ruf, tags.GetValueOrDefault("fo", "0"), fromReportingAddress, text);
    }

    private static DmarcPolicy? ParsePolicy(string? value) => value?.Trim().ToLowerInvariant() switch
    {
        "none" => DmarcPolicy.None,
        "quarantine" => DmarcPolicy.Quarantine,
        "reject" => DmarcPolicy.Reject,
        _ => null,
    };

    private static DmarcAlignment Alignment(string? value) =>
        value?.Trim().ToLowerInvariant() == "s" ? DmarcAlignment.Strict : DmarcAlignment.Relaxed;

    private static IReadOnlyList<string> Uris(string? value) =>
        value is null ? [] : value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    // dmarc-uri = URI [ "!" 1*DIGIT [ "k" / "m" / "g" / "t" ] ] (§6.4)
    private static bool IsValidReportUri(string uri)
    {
        var bang = uri.LastIndexOf('!');
        var address = bang > 0 ? uri[..bang] : uri;
        return Uri.TryCreate(address, UriKind.Absolute, out _);
    }
}
