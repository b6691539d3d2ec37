using System.Globalization;
using MimeKit;
using MimeKit.Cryptography;
using Org.BouncyCastle.Crypto;

namespace Postern.Core.Authentication;

/// <summary>
/// Validates a message's ARC chain (RFC 8617 §5.2): MimeKit's <see cref="ArcVerifier"/> checks its structure,
/// <see cref="DkimMessageHashes"/> verifies the newest ARC-Message-Signature and every ARC-Seal natively (the body
/// hash shared with DKIM), with keys fetched through <see cref="IDnsResolver"/> under the same strict key-record rules
/// as DKIM. It reports who sealed
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

    public Task<ArcChainResult> VerifyAsync(MimeMessage message, CancellationToken cancellationToken = default) =>
        VerifyAsync(new DkimMessageHashes(message), cancellationToken);

    /// <summary>Validates the chain of the message <paramref name="hashes"/> is for, sharing its body hashes with the DKIM check.</summary>
    internal async Task<ArcChainResult> VerifyAsync(DkimMessageHashes hashes, CancellationToken cancellationToken)
    {
        var message = hashes.Message;
        // MimeKit reads the chain's structure (complete sets, instances, cv=); with every algorithm disabled it does no
        // cryptography and reports each signature it reaches as failed. Those signatures are verified here, natively.
        var structure = new ArcVerifier(NoKeys.Instance) { MinimumRsaKeyLength = DkimChecker.MinimumRsaKeyBits };
        structure.Disable(DkimSignatureAlgorithm.RsaSha256);
        structure.Disable(DkimSignatureAlgorithm.Ed25519Sha256);
        var validation = await structure.VerifyAsync(message, cancellationToken).ConfigureAwait(false);
        var fields = ReadFields(message);
        var sets = Summaries(fields);

        if (validation.Chain == ArcSignatureValidationResult.None)
            return new ArcChainResult(ArcResult.None, sets);

        var newestAms = fields.FirstOrDefault(f => f.Header.Id == HeaderId.ArcMessageSignature && f.Instance == sets.Count);
        if (newestAms?.Tags?.GetValueOrDefault("h") is { } signedHeaders
            && signedHeaders.Split(':').Any(h => h.Trim().Equals("arc-seal", StringComparison.OrdinalIgnoreCase)))
            return new ArcChainResult(ArcResult.Fail, sets, "the newest ARC-Message-Signature signs ARC-Seal, which RFC 8617 §4.1.2 forbids");

        var errors = validation.ChainErrors & ~(ArcValidationErrors.MessageSignatureValidationFailed | ArcValidationErrors.SealValidationFailed);
        var keys = new RecordingLocator(_keys);
        var failedSeals = new List<int>();
        if (validation.MessageSignature is not null && validation.Seals is { } seals)
        {
            var chain = Chain(fields, seals.Length);
            if (chain is null || !await VerifyMessageSignatureAsync(hashes, chain[^1].MessageSignature, keys, cancellationToken).ConfigureAwait(false))
                errors |= ArcValidationErrors.MessageSignatureValidationFailed;
            for (var i = seals.Length - 1; i >= 0; i--)
            {
                if (chain is null || !await VerifySealAsync(chain, i, keys, cancellationToken).ConfigureAwait(false))
                    failedSeals.Add(i + 1);
            }
            if (failedSeals.Count > 0)
                errors |= ArcValidationErrors.SealValidationFailed;
        }
        if (errors == ArcValidationErrors.None)
            return new ArcChainResult(ArcResult.Pass, sets);

        // Temporary only when every failed signature failed for want of DNS, and nothing else was wrong.
        var failedSignatures = ((errors & ArcValidationErrors.MessageSignatureValidationFailed) != 0 ? 1 : 0) + failedSeals.Count;
        var temporary = keys.Problems.Count == failedSignatures && keys.Problems.All(p => p.Temporary) && failedSignatures > 0
            && (errors & ~(ArcValidationErrors.MessageSignatureValidationFailed | ArcValidationErrors.SealValidationFailed)) == 0;
        return new ArcChainResult(ArcResult.Fail, sets, Describe(errors, failedSeals, keys.Problems), temporary, errors);
    }

    /// <summary>
    /// The newest ARC-Message-Signature (RFC 8617 §5.2 step 4), as a DKIM signature without v=. MimeKit reads a missing
    /// c= as simple/simple, as DKIM would; ARC implementations (dkimpy, the ValiMail suite) use relaxed/relaxed, so
    /// without c= either passes.
    /// </summary>
    private static async Task<bool> VerifyMessageSignatureAsync(DkimMessageHashes hashes, ArcField ams, RecordingLocator keys, CancellationToken cancellationToken)
    {
        if (ams.Tags is not { } tags || !HasSignatureTags(tags) || tags.GetValueOrDefault("bh") is not { Length: > 0 } bh
            || tags.GetValueOrDefault("h") is not { } h)
            return false;
        var maxLength = -1;
        if (tags.TryGetValue("l", out var l) && !int.TryParse(l, NumberStyles.None, CultureInfo.InvariantCulture, out maxLength))
            return false;
        (DkimCanonicalizationAlgorithm Header, DkimCanonicalizationAlgorithm Body)[] canonicalizations;
        if (tags.TryGetValue("c", out var c))
        {
            if (!IsCanonicalization(c))
                return false;
            canonicalizations = [DkimMessageHashes.ParseCanonicalization(c)];
        }
        else
        {
            canonicalizations = [DkimMessageHashes.ParseCanonicalization(null), DkimMessageHashes.ParseCanonicalization("relaxed/relaxed")];
        }
        var matching = canonicalizations.Where(c => hashes.BodyHashMatches(c.Body, maxLength, bh)).ToArray();
        if (matching.Length == 0 || await keys.FindAsync(tags, cancellationToken).ConfigureAwait(false) is not { } key)
            return false;
        var signed = h.Split(':');
        return matching.Any(c => hashes.VerifyHeaderSignature(ams.Header, signed, c.Header, key, tags["b"]));
    }

    /// <summary>The ARC-Seal of set <paramref name="index"/> (0-based) over every set up to it (RFC 8617 §5.1.1).</summary>
    private static async Task<bool> VerifySealAsync(ArcSetHeaders[] chain, int index, RecordingLocator keys, CancellationToken cancellationToken)
    {
        var seal = chain[index].Seal;
        if (seal.Tags is not { } tags || !HasSignatureTags(tags) || tags.ContainsKey("h"))
            return false;
        if (await keys.FindAsync(tags, cancellationToken).ConfigureAwait(false) is not { } key)
            return false;
        var signed = chain.Take(index).SelectMany(s => new[] { s.Results.Header, s.MessageSignature.Header, s.Seal.Header })
            .Concat([chain[index].Results.Header, chain[index].MessageSignature.Header]);
        return DkimMessageHashes.VerifySeal(signed, seal.Header, key, tags["b"]);
    }

    /// <summary>What MimeKit's verifier requires of every ARC signature: a known algorithm, d=, s=, b=, and a numeric t= if any.</summary>
    private static bool HasSignatureTags(IReadOnlyDictionary<string, string> tags) =>
        tags.GetValueOrDefault("a")?.ToLowerInvariant() is "rsa-sha256" or "ed25519-sha256"
        && tags.GetValueOrDefault("d") is { Length: > 0 } && tags.GetValueOrDefault("s") is { Length: > 0 } && tags.GetValueOrDefault("b") is { Length: > 0 }
        && (!tags.TryGetValue("t", out var t) || int.TryParse(t, NumberStyles.None, CultureInfo.InvariantCulture, out _));

    private static bool IsCanonicalization(string c)
    {
        var parts = c.ToLowerInvariant().Split('/');
        return parts.Length is 1 or 2 && parts.All(p => p.Trim() is "relaxed" or "simple");
    }

    /// <summary>Every ARC field of the message, each parsed once: its instance, and its tags or (an ARC-Authentication-Results) its results.</summary>
    private static List<ArcField> ReadFields(MimeMessage message)
    {
        var fields = new List<ArcField>();
        foreach (var header in message.Headers)
        {
            if (header.Id == HeaderId.ArcAuthenticationResults && AuthenticationResults.TryParse(header.RawValue, out var aar))
                fields.Add(new ArcField(header, aar.Instance ?? 0, null, aar));
            else if (header.Id is HeaderId.ArcMessageSignature or HeaderId.ArcSeal && DkimTagList.TryParse(header.Value) is { } tags)
                fields.Add(new ArcField(header, int.TryParse(tags.GetValueOrDefault("i"), NumberStyles.None, CultureInfo.InvariantCulture, out var i) ? i : 0, tags, null));
        }
        return fields;
    }

    /// <summary>The sets in instance order, read leniently: a malformed field is skipped, not fatal.</summary>
    private static IReadOnlyList<ArcSetSummary> Summaries(List<ArcField> fields)
    {
        var seals = new SortedDictionary<int, IReadOnlyDictionary<string, string>>();
        var results = new Dictionary<int, AuthenticationResults>();
        foreach (var field in fields)
        {
            if (field.Header.Id == HeaderId.ArcSeal && field.Instance is > 0 and <= ArcSealer.MaxInstances)
                seals.TryAdd(field.Instance, field.Tags!);
            else if (field.Results is { Instance: not null } aar)
                results.TryAdd(field.Instance, aar);
        }
        return seals.Select(s => new ArcSetSummary(s.Key, s.Value.GetValueOrDefault("d", ""), s.Value.GetValueOrDefault("s", ""),
            s.Value.GetValueOrDefault("cv", ""), results.GetValueOrDefault(s.Key))).ToArray();
    }

    /// <summary>Each set's three fields by instance; null unless every instance up to <paramref name="count"/> has exactly one of each.</summary>
    private static ArcSetHeaders[]? Chain(List<ArcField> fields, int count)
    {
        var results = new ArcField?[count];
        var signatures = new ArcField?[count];
        var seals = new ArcField?[count];
        foreach (var field in fields)
        {
            if (field.Instance < 1 || field.Instance > count)
                continue;
            var slot = field.Header.Id switch
            {
                HeaderId.ArcAuthenticationResults => results,
                HeaderId.ArcMessageSignature => signatures,
                _ => seals,
            };
            if (slot[field.Instance - 1] is not null)
                return null;
            slot[field.Instance - 1] = field;
        }
        var chain = new ArcSetHeaders[count];
        for (var i = 0; i < count; i++)
        {
            if (results[i] is not { } aar || signatures[i] is not { } ams || seals[i] is not { } seal)
                return null;
            chain[i] = new ArcSetHeaders(aar, ams, seal);
        }
        return chain;
    }

    private static string Describe(ArcValidationErrors errors, IReadOnlyList<int> failedSeals, IReadOnlyCollection<DkimKeyException> problems)
    {
        var reasons = new List<string>();
        if ((errors & ArcValidationErrors.InvalidArcSealChainValidationValue) != 0)
            reasons.Add("a seal carries the wrong cv= (an earlier hop already found the chain broken)");
        if ((errors & ArcValidationErrors.MissingArcSealChainValidationValue) != 0)
            reasons.Add("a seal has no cv=");
        var structural = errors & ~(ArcValidationErrors.InvalidArcSealChainValidationValue | ArcValidationErrors.MissingArcSealChainValidationValue
            | ArcValidationErrors.MessageSignatureValidationFailed | ArcValidationErrors.SealValidationFailed);
        if (structural != ArcValidationErrors.None)
            reasons.Add($"the ARC sets are malformed or incomplete ({structural})");
        if ((errors & ArcValidationErrors.MessageSignatureValidationFailed) != 0)
            reasons.Add("the newest ARC-Message-Signature did not verify");
        reasons.AddRange(failedSeals.Select(i => $"the ARC-Seal i={i} did not verify"));
        reasons.AddRange(problems.Select(p => p.Message).Distinct());
        return reasons.Count == 0 ? "the chain did not validate" : string.Join("; ", reasons);
    }

    /// <summary>One ARC field with what was parsed of it: i=, and the tags (ARC-Message-Signature, ARC-Seal) or the results (ARC-Authentication-Results).</summary>
    private sealed record ArcField(Header Header, int Instance, IReadOnlyDictionary<string, string>? Tags, AuthenticationResults? Results);

    /// <summary>The three fields of one ARC set.</summary>
    private sealed record ArcSetHeaders(ArcField Results, ArcField MessageSignature, ArcField Seal);

    /// <summary>Fetches the keys of the chain's signatures and remembers why one could not be had, so a DNS outage is reported as such.</summary>
    private sealed class RecordingLocator(DnsDkimKeyLocator inner)
    {
        private readonly List<DkimKeyException> _problems = [];

        public IReadOnlyCollection<DkimKeyException> Problems => _problems;

        /// <summary>The key for the signature's d= and s=, or null (and a problem recorded) when it cannot be used.</summary>
        public async Task<DkimPublicKeyRecord?> FindAsync(IReadOnlyDictionary<string, string> tags, CancellationToken cancellationToken)
        {
            var domain = tags["d"];
            var selector = tags["s"];
            try
            {
                if (tags.TryGetValue("q", out var q) && !q.Split(':').Any(m => m.Trim() is "dns/txt" or "dns"))
                    throw new DkimKeyException($"unsupported key query method q={q}", temporary: false);
                var key = await inner.FindKeyAsync(domain, selector, cancellationToken).ConfigureAwait(false);
                if (key.KeyType == "rsa" && key.KeyBits < DkimChecker.MinimumRsaKeyBits)
                    throw new DkimKeyException($"{selector}._domainkey.{domain} is a {key.KeyBits}-bit key; at least {DkimChecker.MinimumRsaKeyBits} are required", temporary: false);
                var algorithm = tags["a"].ToLowerInvariant();
                if ((algorithm == "ed25519-sha256") != (key.KeyType == "ed25519"))
                    throw new DkimKeyException($"{selector}._domainkey.{domain} is a k={key.KeyType} key but the signature is a={algorithm}", temporary: false);
                return key;
            }
            catch (DkimKeyException ex)
            {
                _problems.Add(ex);
                return null;
            }
        }
    }

    /// <summary>MimeKit's structural pass never asks for a key (every algorithm is disabled); this says so if it ever did.</summary>
    private sealed class NoKeys : IDkimPublicKeyLocator
    {
        public static readonly NoKeys Instance = new();

        public AsymmetricKeyParameter LocatePublicKey(string methods, string domain, string selector, CancellationToken cancellationToken = default) =>
            throw new InvalidOperationException("ARC keys are fetched by ArcChainVerifier, not by MimeKit's structural check.");

        public Task<AsymmetricKeyParameter> LocatePublicKeyAsync(string methods, string domain, string selector, CancellationToken cancellationToken = default) =>
            Task.FromException<AsymmetricKeyParameter>(new InvalidOperationException("ARC keys are fetched by ArcChainVerifier, not by MimeKit's structural check."));
    }
}
