using System.Collections.Concurrent;
using MimeKit;
using MimeKit.Cryptography;
using Org.BouncyCastle.Crypto;

namespace Postern.Core.Authentication;

/// <summary>
/// Validates a message's ARC chain (RFC 8617 §5.2) with MimeKit's <see cref="ArcVerifier"/>, fetching keys
/// through <see cref="IDnsResolver"/> with the same strict key-record rules as DKIM, and reports who sealed
/// each set and what their ARC-Authentication-Results said, which is how Postern learns what Microsoft 365
/// checked before it handed the message over.
/// </summary>
public sealed class ArcChainVerifier
{
    private readonly DnsDkimKeyLocator _keys;

    public ArcChainVerifier(IDnsResolver dns)
        : this(new DnsDkimKeyLocator(dns))
    {
    }

    public ArcChainVerifier(DnsDkimKeyLocator keys) => _keys = keys;

    public async Task<ArcChainResult> VerifyAsync(MimeMessage message, CancellationToken cancellationToken = default)
    {
        var locator = new RecordingLocator(_keys);
        var verifier = new ArcVerifier(locator) { MinimumRsaKeyLength = DkimChecker.MinimumRsaKeyBits };
        var validation = await verifier.VerifyAsync(message, cancellationToken).ConfigureAwait(false);
        var sets = ReadSets(message);

        if (validation.Chain == ArcSignatureValidationResult.None)
            return new ArcChainResult(ArcResult.None, sets);

        var newestAms = NewestMessageSignature(message, sets.Count);
        if (newestAms?.Tags.GetValueOrDefault("h") is { } signedHeaders
            && signedHeaders.Split(':').Any(h => h.Trim().Equals("arc-seal", StringComparison.OrdinalIgnoreCase)))
            return new ArcChainResult(ArcResult.Fail, sets, "the newest ARC-Message-Signature signs ARC-Seal, which RFC 8617 §4.1.2 forbids");

        if (validation.Chain == ArcSignatureValidationResult.Pass)
            return new ArcChainResult(ArcResult.Pass, sets);

        // MimeKit reads a missing c= on an AMS as simple/simple, as DKIM would; ARC implementations (dkimpy, the
        // ValiMail suite) use relaxed/relaxed. When that is the only thing that failed, check the AMS that way.
        if (validation.ChainErrors == ArcValidationErrors.MessageSignatureValidationFailed && newestAms is { } ams
            && !ams.Tags.ContainsKey("c")
            && await ArcMessageSignatureCheck.VerifyRelaxedAsync(locator, message, ams.Header, ams.Tags, cancellationToken).ConfigureAwait(false))
            return new ArcChainResult(ArcResult.Pass, sets);

        // Temporary only when every failed signature failed for want of DNS, and nothing else was wrong.
        var failedSignatures = (validation.MessageSignature?.Signature == ArcSignatureValidationResult.Fail ? 1 : 0)
            + (validation.Seals?.Count(s => s?.Signature == ArcSignatureValidationResult.Fail) ?? 0);
        var temporary = locator.Problems.Count == failedSignatures && locator.Problems.All(p => p.Temporary) && failedSignatures > 0
            && (validation.ChainErrors & ~(ArcValidationErrors.MessageSignatureValidationFailed | ArcValidationErrors.SealValidationFailed)) == 0;
        return new ArcChainResult(ArcResult.Fail, sets, Describe(validation, locator.Problems), temporary, validation.ChainErrors);
    }

    private static string Describe(ArcValidationResult validation, IReadOnlyCollection<DkimKeyException> problems)
    {
        var reasons = new List<string>();
        var errors = validation.ChainErrors;
        if ((errors & ArcValidationErrors.InvalidArcSealChainValidationValue) != 0)
            reasons.Add("a seal carries the wrong cv= (an earlier hop already found the chain broken)");
        if ((errors & ArcValidationErrors.MissingArcSealChainValidationValue) != 0)
            reasons.Add("a seal has no cv=");
        var structural = errors & ~(ArcValidationErrors.InvalidArcSealChainValidationValue | ArcValidationErrors.MissingArcSealChainValidationValue
            | ArcValidationErrors.MessageSignatureValidationFailed | ArcValidationErrors.SealValidationFailed);
        if (structural != ArcValidationErrors.None)
            reasons.Add($"the ARC sets are malformed or incomplete ({structural})");
        if (validation.MessageSignature?.Signature == ArcSignatureValidationResult.Fail)
            reasons.Add("the newest ARC-Message-Signature did not verify");
        if (validation.Seals is { } seals)
        {
            for (var i = seals.Length - 1; i >= 0; i--)
            {
                if (seals[i]?.Signature == ArcSignatureValidationResult.Fail)
                    reasons.Add($"the ARC-Seal i={i + 1} did not verify");
            }
        }
        reasons.AddRange(problems.Select(p => p.Message).Distinct());
        return reasons.Count == 0 ? "the chain did not validate" : string.Join("; ", reasons);
    }

    private static (Header Header, IReadOnlyDictionary<string, string> Tags)? NewestMessageSignature(MimeMessage message, int newest)
    {
        foreach (var header in message.Headers)
        {
            if (header.Id == HeaderId.ArcMessageSignature && DkimTagList.TryParse(header.Value) is { } tags
                && int.TryParse(tags.GetValueOrDefault("i"), out var instance) && instance == newest)
                return (header, tags);
        }
        return null;
    }

    /// <summary>The sets in instance order, read leniently: a malformed header is skipped, not fatal.</summary>
    private static IReadOnlyList<ArcSetSummary> ReadSets(MimeMessage message)
    {
        var seals = new SortedDictionary<int, (string Domain, string Selector, string Cv)>();
        var results = new Dictionary<int, AuthenticationResults>();
        foreach (var header in message.Headers)
        {
            if (header.Id == HeaderId.ArcSeal && DkimTagList.TryParse(header.Value) is { } tags
                && int.TryParse(tags.GetValueOrDefault("i"), out var instance) && instance is > 0 and <= 50)
                seals.TryAdd(instance, (tags.GetValueOrDefault("d", ""), tags.GetValueOrDefault("s", ""), tags.GetValueOrDefault("cv", "")));
            else if (header.Id == HeaderId.ArcAuthenticationResults && AuthenticationResults.TryParse(header.RawValue, out var aar)
                && aar.Instance is int aarInstance)
                results.TryAdd(aarInstance, aar);
        }
        return seals.Select(s => new ArcSetSummary(s.Key, s.Value.Domain, s.Value.Selector, s.Value.Cv, results.GetValueOrDefault(s.Key))).ToArray();
    }

    /// <summary>MimeKit turns every key problem into a plain failure; this remembers them so a DNS outage is reported as such.</summary>
    private sealed class RecordingLocator(DnsDkimKeyLocator inner) : IDkimPublicKeyLocator
    {
        private readonly ConcurrentQueue<DkimKeyException> _problems = new();

        public IReadOnlyCollection<DkimKeyException> Problems => _problems;

        public AsymmetricKeyParameter LocatePublicKey(string methods, string domain, string selector, CancellationToken cancellationToken = default) =>
            LocatePublicKeyAsync(methods, domain, selector, cancellationToken).GetAwaiter().GetResult();

        public async Task<AsymmetricKeyParameter> LocatePublicKeyAsync(string methods, string domain, string selector, CancellationToken cancellationToken = default)
        {
            try
            {
                var key = await inner.FindKeyAsync(domain, selector, cancellationToken).ConfigureAwait(false);
                if (key.KeyType == "rsa" && key.KeyBits < DkimChecker.MinimumRsaKeyBits)
                    throw new DkimKeyException($"{selector}._domainkey.{domain} is a {key.KeyBits}-bit key; at least {DkimChecker.MinimumRsaKeyBits} are required", temporary: false);
                return key.Key;
            }
            catch (DkimKeyException ex)
            {
                _problems.Enqueue(ex);
                throw;
            }
        }
    }

    /// <summary>Verifies one ARC-Message-Signature with relaxed/relaxed canonicalization, through MimeKit's own primitives.</summary>
    private sealed class ArcMessageSignatureCheck : DkimVerifierBase
    {
        private ArcMessageSignatureCheck(IDkimPublicKeyLocator locator)
            : base(locator)
        {
        }

        public static async Task<bool> VerifyRelaxedAsync(
            IDkimPublicKeyLocator locator, MimeMessage message, Header ams, IReadOnlyDictionary<string, string> tags, CancellationToken cancellationToken)
        {
            var algorithm = tags.GetValueOrDefault("a") switch
            {
                "rsa-sha256" => DkimSignatureAlgorithm.RsaSha256,
                "ed25519-sha256" => DkimSignatureAlgorithm.Ed25519Sha256,
                _ => (DkimSignatureAlgorithm?)null,
            };
            if (algorithm is null || !tags.TryGetValue("d", out var domain) || !tags.TryGetValue("s", out var selector)
                || !tags.TryGetValue("h", out var h) || !tags.TryGetValue("bh", out var bh) || !tags.TryGetValue("b", out var b))
                return false;
            var maxLength = -1;
            if (tags.TryGetValue("l", out var l) && !int.TryParse(l, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out maxLength))
                return false;
            var options = FormatOptions.Default.Clone();
            options.NewLineFormat = NewLineFormat.Dos;
            try
            {
                if (!VerifyBodyHash(options, message, algorithm.Value, DkimCanonicalizationAlgorithm.Relaxed, maxLength, DkimTagList.WithoutWhitespace(bh)))
                    return false;
                var key = await locator.LocatePublicKeyAsync(tags.GetValueOrDefault("q", "dns/txt"), domain, selector, cancellationToken).ConfigureAwait(false);
                var check = new ArcMessageSignatureCheck(locator);
                return check.VerifySignature(options, message, ams, algorithm.Value, key, h.Split(':').Select(x => x.Trim()).ToArray(),
                    DkimCanonicalizationAlgorithm.Relaxed, DkimTagList.WithoutWhitespace(b));
            }
            catch (Exception ex) when (ex is DkimKeyException or FormatException)
            {
                return false;
            }
        }
    }
}
