namespace Postern.Core.Authentication;

/// <summary>The result of verifying one DKIM signature, as RFC 8601 §2.7.1 names them.</summary>
public enum DkimResult
{
    /// <summary>The message carries no signature.</summary>
    None,

    /// <summary>The signature verified.</summary>
    Pass,

    /// <summary>The signature was well formed but did not verify (altered headers or body).</summary>
    Fail,

    /// <summary>The signature could not be processed: malformed, missing tags, expired.</summary>
    Neutral,

    /// <summary>The key could not be fetched because DNS failed; a later attempt may succeed.</summary>
    TempError,

    /// <summary>The key is missing, revoked, too small or unusable, or the algorithm is not accepted.</summary>
    PermError,
}

/// <summary>What verifying one DKIM-Signature header found.</summary>
/// <param name="Result">The outcome.</param>
/// <param name="Domain">d=, the signing domain (DMARC aligns it with From); empty when the header had none.</param>
/// <param name="Selector">s=.</param>
/// <param name="Identity">i=, the agent or user identifier, when present.</param>
/// <param name="Algorithm">a=.</param>
/// <param name="SignaturePrefix">The first characters of b=, which RFC 6008 puts in header.b to tell signatures apart.</param>
/// <param name="Reason">Why it did not pass, in words for an admin.</param>
/// <param name="KeyBits">Size of the key that was used, when it was fetched.</param>
/// <param name="Testing">The key record says t=y: the domain is testing DKIM.</param>
public sealed record DkimSignatureResult(
    DkimResult Result,
    string Domain,
    string Selector,
    string? Identity,
    string? Algorithm,
    string? SignaturePrefix,
    string? Reason = null,
    int? KeyBits = null,
    bool Testing = false)
{
    /// <summary>The RFC 8601 keyword: "pass", "fail", "neutral", "none", "temperror", "permerror".</summary>
    public string Keyword => Result.ToKeyword();
}

public static class DkimResultExtensions
{
    public static string ToKeyword(this DkimResult result) => result switch
    {
        DkimResult.None => "none",
        DkimResult.Pass => "pass",
        DkimResult.Fail => "fail",
        DkimResult.Neutral => "neutral",
        DkimResult.TempError => "temperror",
        DkimResult.PermError => "permerror",
        _ => throw new ArgumentOutOfRangeException(nameof(result), result, null),
    };
}
