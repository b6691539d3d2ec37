namespace Postern.Core.Authentication;

/// <summary>The seven results of SPF's check_host() (RFC 7208 §2.6).</summary>
public enum SpfResult
{
    /// <summary>No SPF record, or no checkable domain.</summary>
    None,

    /// <summary>The domain owner says nothing about this client.</summary>
    Neutral,

    /// <summary>The client is authorized to use the domain.</summary>
    Pass,

    /// <summary>The client is explicitly not authorized.</summary>
    Fail,

    /// <summary>Probably not authorized; the owner asks for leniency.</summary>
    SoftFail,

    /// <summary>A DNS failure that may clear up later.</summary>
    TempError,

    /// <summary>The published record is broken or over the processing limits.</summary>
    PermError,
}

/// <summary>Where a <see cref="SpfCheckResult"/> came from: the MAIL FROM identity or the HELO identity (RFC 7208 §2.3, §2.4).</summary>
public enum SpfIdentity
{
    MailFrom,
    Helo,
}

/// <summary>What check_host() decided, and enough of why to explain it to an admin or a sender.</summary>
/// <param name="Result">The SPF result.</param>
/// <param name="Identity">Which identity was checked.</param>
/// <param name="Domain">The domain whose policy was evaluated (the MAIL FROM domain, or the HELO name).</param>
/// <param name="Sender">The sender used for macros: the MAIL FROM address, or postmaster@HELO.</param>
/// <param name="Explanation">For <see cref="SpfResult.Fail"/>: the domain's exp= text or the receiver's default (RFC 7208 §6.2).</param>
/// <param name="Mechanism">The term that decided: a directive as written, "redirect=…" chains end in the target's term, "default" when nothing matched.</param>
/// <param name="Problem">For the error results: what went wrong.</param>
public sealed record SpfCheckResult(
    SpfResult Result,
    SpfIdentity Identity,
    string Domain,
    string Sender,
    string? Explanation = null,
    string? Mechanism = null,
    string? Problem = null)
{
    /// <summary>The RFC 8601 keyword: "pass", "fail", "softfail", "neutral", "none", "temperror", "permerror".</summary>
    public string Keyword => Result.ToKeyword();
}

public static class SpfResultExtensions
{
    /// <summary>The lower-case keyword RFC 7208 and RFC 8601 use for <paramref name="result"/>.</summary>
    public static string ToKeyword(this SpfResult result) => result switch
    {
        SpfResult.None => "none",
        SpfResult.Neutral => "neutral",
        SpfResult.Pass => "pass",
        SpfResult.Fail => "fail",
        SpfResult.SoftFail => "softfail",
        SpfResult.TempError => "temperror",
        SpfResult.PermError => "permerror",
        _ => throw new ArgumentOutOfRangeException(nameof(result), result, null),
    };
}
