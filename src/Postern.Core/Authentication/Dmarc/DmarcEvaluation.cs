namespace Postern.Core.Authentication;

/// <summary>DMARC results as RFC 8601 §2.7.4 and RFC 7489 §11.2 name them.</summary>
public enum DmarcResult
{
    /// <summary>No DMARC record for the From domain or its Organizational Domain, or no usable From domain.</summary>
    None,

    /// <summary>SPF or DKIM passed for an identifier aligned with the From domain.</summary>
    Pass,

    /// <summary>Neither passed aligned: the domain's policy applies.</summary>
    Fail,

    /// <summary>DNS failed while looking for the record.</summary>
    TempError,

    /// <summary>The published record is unusable, or the From header cannot be evaluated.</summary>
    PermError,
}

/// <summary>What evaluating DMARC for one message found, and the policy to apply.</summary>
/// <param name="Result">The DMARC result.</param>
/// <param name="FromDomain">The RFC5322.From domain evaluated.</param>
/// <param name="OrganizationalDomain">Its Organizational Domain (Public Suffix List).</param>
/// <param name="RecordDomain">Where the record was found: the From domain or the Organizational Domain.</param>
/// <param name="Record">The record used.</param>
/// <param name="RequestedPolicy">p= (or sp= for a subdomain covered by the Organizational Domain's record).</param>
/// <param name="AppliedPolicy">The disposition to apply: none on pass, otherwise the requested policy, one step milder when pct= sampled the message out.</param>
/// <param name="SampledOut">pct= excluded this message from the policy (§6.6.4).</param>
/// <param name="SpfAligned">SPF passed for a domain aligned with From.</param>
/// <param name="DkimAligned">A DKIM signature passed for a d= aligned with From.</param>
/// <param name="AlignedDkimDomain">The d= of the first aligned passing signature.</param>
/// <param name="Reason">Why, in words for an admin.</param>
public sealed record DmarcEvaluation(
    DmarcResult Result,
    string? FromDomain,
    string? OrganizationalDomain = null,
    string? RecordDomain = null,
    DmarcRecord? Record = null,
    DmarcPolicy RequestedPolicy = DmarcPolicy.None,
    DmarcPolicy AppliedPolicy = DmarcPolicy.None,
    bool SampledOut = false,
    bool SpfAligned = false,
    bool DkimAligned = false,
    string? AlignedDkimDomain = null,
    string? Reason = null)
{
    /// <summary>The RFC 8601 keyword: "pass", "fail", "none", "temperror", "permerror".</summary>
    public string Keyword => Result.ToKeyword();
}

public static class DmarcResultExtensions
{
    public static string ToKeyword(this DmarcResult result) => result switch
    {
        DmarcResult.None => "none",
        DmarcResult.Pass => "pass",
        DmarcResult.Fail => "fail",
        DmarcResult.TempError => "temperror",
        DmarcResult.PermError => "permerror",
        _ => throw new ArgumentOutOfRangeException(nameof(result), result, null),
    };

    public static string ToKeyword(this DmarcPolicy policy) => policy switch
    {
        DmarcPolicy.None => "none",
        DmarcPolicy.Quarantine => "quarantine",
        DmarcPolicy.Reject => "reject",
        _ => throw new ArgumentOutOfRangeException(nameof(policy), policy, null),
    };
}
