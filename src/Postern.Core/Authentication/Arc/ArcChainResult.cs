using MimeKit.Cryptography;

namespace Postern.Core.Authentication;

/// <summary>The ARC chain validation status (RFC 8617 §4.4): the cv= value the next sealer writes.</summary>
public enum ArcResult
{
    /// <summary>The message carries no ARC sets.</summary>
    None,

    /// <summary>Every seal and the newest message signature verified, and the chain is well formed.</summary>
    Pass,

    /// <summary>Anything else: a broken, incomplete or unverifiable chain.</summary>
    Fail,
}

/// <summary>One ARC set as found on the message: who sealed it and what they said they checked.</summary>
/// <param name="Instance">i=, 1 for the first intermediary.</param>
/// <param name="Domain">d= of the ARC-Seal: the sealer (for Microsoft 365, e.g. microsoft.com).</param>
/// <param name="Selector">s= of the ARC-Seal.</param>
/// <param name="ChainValidation">The seal's own cv= tag.</param>
/// <param name="AuthenticationResults">The ARC-Authentication-Results: the sealer's own checks, trustworthy only if the chain passes and the sealer is trusted.</param>
public sealed record ArcSetSummary(int Instance, string Domain, string Selector, string ChainValidation, AuthenticationResults? AuthenticationResults);

/// <summary>What validating a message's ARC chain found.</summary>
/// <param name="Result">none, pass or fail.</param>
/// <param name="Sets">The sets from i=1 up, when the chain was well formed enough to read.</param>
/// <param name="Reason">Why the chain failed, for an admin.</param>
/// <param name="TemporaryFailure">The chain failed only because DNS could not be asked; a later attempt may pass.</param>
/// <param name="Errors">MimeKit's structural findings.</param>
public sealed record ArcChainResult(ArcResult Result, IReadOnlyList<ArcSetSummary> Sets, string? Reason = null, bool TemporaryFailure = false,
    ArcValidationErrors Errors = ArcValidationErrors.None)
{
    /// <summary>The RFC 8601 keyword: "none", "pass" or "fail".</summary>
    public string Keyword => Result.ToKeyword();

    /// <summary>The newest set, whose sealer handed the message to us.</summary>
    public ArcSetSummary? Newest => Sets.Count == 0 ? null : Sets[^1];
}

public static class ArcResultExtensions
{
    public static string ToKeyword(this ArcResult result) => result switch
    {
        ArcResult.None => "none",
        ArcResult.Pass => "pass",
        ArcResult.Fail => "fail",
        _ => throw new ArgumentOutOfRangeException(nameof(result), result, null),
    };
}
