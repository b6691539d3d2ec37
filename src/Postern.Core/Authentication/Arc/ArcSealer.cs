using System.Globalization;
using System.Text;
using MimeKit;
using MimeKit.Cryptography;
using Postern.Core.Spool;

namespace Postern.Core.Authentication;

/// <summary>What happened when Postern tried to add its ARC set.</summary>
/// <param name="Sealed">An ARC set was added at the top of the message.</param>
/// <param name="Instance">i= of the new set (or the one it would have had).</param>
/// <param name="ChainValidation">cv= written into the new seal: none, pass or fail.</param>
/// <param name="Reason">Why nothing was added, when nothing was.</param>
public sealed record ArcSealOutcome(bool Sealed, int Instance, string ChainValidation, string? Reason = null);

/// <summary>
/// Adds Postern's ARC set (RFC 8617 §5.1) to a message it is handing back to Microsoft 365, so that
/// Microsoft 365 (with Postern listed as a trusted ARC sealer) keeps trusting the authentication results of
/// the original hop. The ARC-Authentication-Results carry what Postern itself checked. The set is written by
/// <see cref="ArcSetSigner"/> over the bytes Postern sends, never a re-serialisation, so the body reaches
/// Microsoft 365 unchanged. cv= comes from validating the incoming chain first.
/// </summary>
public sealed class ArcSealer
{
    /// <summary>RFC 8617 §4.2.1: instances run from 1 to 50.</summary>
    public const int MaxInstances = 50;

    /// <summary>Covered by the ARC-Message-Signature when present.</summary>
    public static readonly IReadOnlyList<string> DefaultHeaders =
    [
        "from", "sender", "reply-to", "subject", "date", "message-id", "to", "cc", "in-reply-to", "references",
        "mime-version", "content-type", "content-transfer-encoding", "content-disposition", "dkim-signature",
    ];

    private readonly DkimSigningKey _key;
    private readonly ArcChainVerifier? _verifier;

    /// <param name="key">The deployment's ARC signing key.</param>
    /// <param name="domain">d= of the seal: the deployment's signing domain (e.g. arc.postern.example).</param>
    /// <param name="selector">s= of the seal.</param>
    /// <param name="authservId">The authserv-id Postern stamps its results with (RFC 8601 §2.5).</param>
    /// <param name="verifier">Validates the incoming chain when the results passed to <see cref="SealAsync(RawMessage, IEnumerable{AuthenticationMethodResult}, CancellationToken)"/> carry no arc= result.</param>
    public ArcSealer(DkimSigningKey key, string domain, string selector, string authservId, ArcChainVerifier? verifier = null)
    {
        if (!DkimNames.IsValidDomain(domain))
            throw new ArgumentException($"'{domain}' is not a valid ARC signing domain.", nameof(domain));
        if (!DkimNames.IsValidSelector(selector))
            throw new ArgumentException($"'{selector}' is not a valid ARC selector.", nameof(selector));
        if (string.IsNullOrWhiteSpace(authservId))
            throw new ArgumentException("The authserv-id must not be empty.", nameof(authservId));
        _key = key;
        _verifier = verifier;
        Domain = domain;
        Selector = selector;
        AuthservId = authservId;
    }

    public string Domain { get; }

    public string Selector { get; }

    public string AuthservId { get; }

    public IReadOnlyList<string> Headers { get; init; } = DefaultHeaders;

    /// <summary>The clock for t=.</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    /// <summary>
    /// Seals <paramref name="message"/> with <paramref name="results"/> as the ARC-Authentication-Results: adds
    /// ARC-Seal, ARC-Message-Signature and ARC-Authentication-Results at its top, signed over its bytes as they
    /// will be sent. Include the arc= result of validating the incoming chain (as <see cref="AuthenticationChecker"/>
    /// does); without it the chain is validated here. Nothing is added when the newest seal already says cv=fail
    /// (§5.1.2) or the chain is at its 50-set limit.
    /// </summary>
    public async Task<ArcSealOutcome> SealAsync(RawMessage message, IEnumerable<AuthenticationMethodResult> results, CancellationToken cancellationToken = default)
    {
        var seals = message.Values("ARC-Seal").Select(v => DkimTagList.TryParse(v)).ToList();
        var existing = seals.Select(t => int.TryParse(t?.GetValueOrDefault("i"), out var n) ? n : 0).DefaultIfEmpty(0).Max();
        var instance = existing + 1;
        if (existing >= MaxInstances)
            return new ArcSealOutcome(false, instance, "fail", $"the ARC chain already has {MaxInstances} sets");

        var authres = new AuthenticationResults(AuthservId);
        authres.Results.AddRange(results);
        var arc = authres.Results.FirstOrDefault(r => r.Method.Equals("arc", StringComparison.OrdinalIgnoreCase));
        if (existing > 0 && arc is null)
        {
            var verifier = _verifier ?? throw new InvalidOperationException(
                "The message carries an ARC chain but the results have no arc= result; validate the chain first or give the sealer an ArcChainVerifier.");
            var chain = await verifier.VerifyAsync(MimeMessageBytes.ToMimeMessage(message), cancellationToken).ConfigureAwait(false);
            arc = new AuthenticationMethodResult("arc", chain.Keyword);
            authres.Results.Insert(0, arc);
        }
        var cv = existing == 0 ? "none" : arc!.Result.ToLowerInvariant();
        if (existing > 0 && cv is not ("pass" or "fail"))
            throw new ArgumentException($"arc={arc!.Result} cannot describe a chain of {existing} sets; it must be pass or fail.", nameof(results));
        var newest = seals.FirstOrDefault(t => t?.GetValueOrDefault("i") == existing.ToString(CultureInfo.InvariantCulture));
        if (existing > 0 && string.Equals(newest?.GetValueOrDefault("cv"), "fail", StringComparison.OrdinalIgnoreCase))
            return new ArcSealOutcome(false, instance, cv, "the newest ARC seal already says cv=fail, so no further set may be added (RFC 8617 §5.1.2)");

        var signed = DkimMessageSigner.HeadersFor(message, Headers, []);
        if (!signed.Contains("from"))
        {
            // A message without From is still sealed; listing the absent field also stops one being added later.
            signed.Insert(0, "from");
        }
        var set = ArcSetSigner.Sign(message, instance, cv, authres, _key, Domain, Selector, signed, TimeProvider.GetUtcNow().ToUnixTimeSeconds());
        for (var i = set.Count - 1; i >= 0; i--)
            message.Insert(0, set[i]);
        return new ArcSealOutcome(true, instance, cv);
    }

    /// <summary>Seals a <see cref="MimeMessage"/> as MimeKit writes it (CRLF line ends); the set is added at its top.</summary>
    public async Task<ArcSealOutcome> SealAsync(MimeMessage message, IEnumerable<AuthenticationMethodResult> results, CancellationToken cancellationToken = default)
    {
        var raw = MimeMessageBytes.ToRaw(message);
        var before = raw.Fields.Count;
        var outcome = await SealAsync(raw, results, cancellationToken).ConfigureAwait(false);
        for (var i = raw.Fields.Count - before - 1; i >= 0; i--)
            message.Headers.Insert(0, MimeMessageBytes.ToHeader(raw.Fields[i]));
        return outcome;
    }

    /// <summary>
    /// The results of every Authentication-Results header stamped with <paramref name="authservId"/>, in
    /// message order: how the ValiMail signing suite builds an AAR ("AR consolidation"), for when an earlier
    /// stage wrote its findings into the message rather than handing them over as data.
    /// </summary>
    public static IReadOnlyList<AuthenticationMethodResult> CollectResults(MimeMessage message, string authservId) =>
        Collect(message.Headers.Where(h => h.Id == HeaderId.AuthenticationResults).Select(h => h.RawValue), authservId);

    /// <inheritdoc cref="CollectResults(MimeMessage, string)"/>
    public static IReadOnlyList<AuthenticationMethodResult> CollectResults(RawMessage message, string authservId) =>
        Collect(message.Values("Authentication-Results").Select(v => Encoding.UTF8.GetBytes(v)), authservId);

    private static List<AuthenticationMethodResult> Collect(IEnumerable<byte[]> values, string authservId)
    {
        var results = new List<AuthenticationMethodResult>();
        foreach (var value in values)
        {
            if (AuthenticationResults.TryParse(value, out var parsed)
                && string.Equals(parsed.AuthenticationServiceIdentifier, authservId, StringComparison.OrdinalIgnoreCase))
                results.AddRange(parsed.Results);
        }
        return results;
    }
}
