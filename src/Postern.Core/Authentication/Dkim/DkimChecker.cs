using System.Globalization;
using MimeKit;
using MimeKit.Cryptography;
using Org.BouncyCastle.Crypto;

namespace Postern.Core.Authentication;

/// <summary>
/// Verifies every DKIM-Signature of a message (RFC 6376). MimeKit's <see cref="DkimVerifier"/> validates the
/// signature's syntax, <see cref="DkimMessageHashes"/> the hashes and RSA (natively, the body hashed once per
/// message); this class adds what a receiver needs around them: a result per
/// signature with the RFC 8601 vocabulary, strict key-record rules, the RFC 8301 algorithm and key-size
/// floor, expiry, and a reason an admin can read.
/// </summary>
public sealed class DkimChecker
{
    /// <summary>RFC 8301 §3.2: verifiers must not accept RSA keys below 1024 bits.</summary>
    public const int MinimumRsaKeyBits = 1024;

    private readonly DnsDkimKeyLocator _keys;
    private readonly TimeProvider _time;

    public DkimChecker(IDnsResolver dns, TimeProvider? timeProvider = null)
        : this(new DnsDkimKeyLocator(dns), timeProvider)
    {
    }

    public DkimChecker(DnsDkimKeyLocator keys, TimeProvider? timeProvider = null)
    {
        _keys = keys;
        _time = timeProvider ?? TimeProvider.System;
    }

    /// <summary>One result per DKIM-Signature header, in header order; empty when the message is unsigned.</summary>
    public Task<IReadOnlyList<DkimSignatureResult>> VerifyAsync(MimeMessage message, CancellationToken cancellationToken = default) =>
        VerifyAsync(new DkimMessageHashes(message), cancellationToken);

    /// <summary>Every DKIM-Signature of the message <paramref name="hashes"/> is for, sharing its body hashes with the ARC check.</summary>
    internal async Task<IReadOnlyList<DkimSignatureResult>> VerifyAsync(DkimMessageHashes hashes, CancellationToken cancellationToken)
    {
        var results = new List<DkimSignatureResult>();
        foreach (var header in hashes.Message.Headers.Where(h => h.Id == HeaderId.DkimSignature).ToArray())
            results.Add(await VerifySignatureAsync(hashes, header, cancellationToken).ConfigureAwait(false));
        return results;
    }

    /// <summary>Verifies one DKIM-Signature header of <paramref name="message"/>.</summary>
    public Task<DkimSignatureResult> VerifySignatureAsync(MimeMessage message, Header signature, CancellationToken cancellationToken = default) =>
        VerifySignatureAsync(new DkimMessageHashes(message), signature, cancellationToken);

    private async Task<DkimSignatureResult> VerifySignatureAsync(DkimMessageHashes hashes, Header signature, CancellationToken cancellationToken)
    {
        var tags = DkimTagList.TryParse(signature.Value);
        if (tags is null)
            return new DkimSignatureResult(DkimResult.Neutral, "", "", null, null, null, "the signature is not a valid tag list");

        var domain = tags.GetValueOrDefault("d", "");
        var selector = tags.GetValueOrDefault("s", "");
        var algorithm = tags.GetValueOrDefault("a");
        var b = tags.TryGetValue("b", out var bValue) ? DkimTagList.WithoutWhitespace(bValue) : null;
        DkimSignatureResult Result(DkimResult result, string? reason = null, DkimPublicKeyRecord? key = null) =>
            new(result, domain, selector, tags.GetValueOrDefault("i"), algorithm, b is null ? null : b[..Math.Min(8, b.Length)],
                reason, key?.KeyBits, key?.Testing ?? false);

        foreach (var required in new[] { "v", "a", "b", "bh", "d", "h", "s" })
        {
            if (!tags.ContainsKey(required))
                return Result(DkimResult.Neutral, $"the signature has no {required}= tag");
        }
        if (tags["v"] != "1")
            return Result(DkimResult.Neutral, $"unknown signature version v={tags["v"]}");
        if (!DkimNames.IsValidDomain(domain))
            return Result(DkimResult.PermError, $"d={domain} is not a valid domain");
        if (!DkimNames.IsValidSelector(selector))
            return Result(DkimResult.PermError, $"s={selector} is not a valid selector");
        if (!tags["h"].Split(':').Any(h => h.Trim().Equals("from", StringComparison.OrdinalIgnoreCase)))
            return Result(DkimResult.Neutral, "the signature does not cover the From header");
        var (keyType, hash) = algorithm switch
        {
            "rsa-sha256" => ("rsa", "sha256"),
            "ed25519-sha256" => ("ed25519", "sha256"),
            "rsa-sha1" => ("rsa", "sha1"),
            _ => ("", ""),
        };
        if (keyType.Length == 0)
            return Result(DkimResult.Neutral, $"unknown algorithm a={algorithm}");
        if (hash == "sha1")
            return Result(DkimResult.PermError, "rsa-sha1 signatures are not accepted (RFC 8301)");
        if (tags.TryGetValue("x", out var x) && long.TryParse(x, NumberStyles.None, CultureInfo.InvariantCulture, out var expires)
            && expires < _time.GetUtcNow().ToUnixTimeSeconds())
            return Result(DkimResult.Neutral, "the signature has expired");

        DkimPublicKeyRecord key;
        try
        {
            key = await _keys.FindKeyAsync(domain, selector, cancellationToken).ConfigureAwait(false);
        }
        catch (DkimKeyException ex)
        {
            return Result(ex.Temporary ? DkimResult.TempError : DkimResult.PermError, ex.Message);
        }
        if (key.KeyType != keyType)
            return Result(DkimResult.PermError, $"a={algorithm} but the key is k={key.KeyType}", key);
        if (key.HashAlgorithms is { } allowed && !allowed.Contains(hash))
            return Result(DkimResult.PermError, $"the key does not allow {hash} (h={string.Join(':', allowed)})", key);
        if (key.KeyType == "rsa" && key.KeyBits < MinimumRsaKeyBits)
            return Result(DkimResult.PermError, $"the key is {key.KeyBits} bits; at least {MinimumRsaKeyBits} are required", key);
        if (key.StrictIdentity && tags.TryGetValue("i", out var identity)
            && !identity[(identity.LastIndexOf('@') + 1)..].Equals(domain, StringComparison.OrdinalIgnoreCase))
            return Result(DkimResult.PermError, "the key (t=s) requires i= to be in exactly the d= domain", key);

        // MimeKit validates the tags (c=, l=, t=, i= within d=, …) and, with every algorithm disabled, does no cryptography.
        var syntax = new DkimVerifier(new FixedKeyLocator(key.Key)) { MinimumRsaKeyLength = MinimumRsaKeyBits };
        syntax.Disable(DkimSignatureAlgorithm.RsaSha256);
        syntax.Disable(DkimSignatureAlgorithm.Ed25519Sha256);
        try
        {
            syntax.Verify(hashes.Message, signature, cancellationToken);
        }
        catch (FormatException ex)
        {
            return Result(DkimResult.Neutral, ex.Message, key);
        }

        var (headerCanonicalization, bodyCanonicalization) = DkimMessageHashes.ParseCanonicalization(tags.GetValueOrDefault("c"));
        var maxLength = -1;
        if (tags.TryGetValue("l", out var l) && !int.TryParse(DkimTagList.WithoutWhitespace(l), NumberStyles.None, CultureInfo.InvariantCulture, out maxLength))
            return Result(DkimResult.Neutral, $"l={l} is not a length", key);
        if (!hashes.BodyHashMatches(bodyCanonicalization, maxLength, tags["bh"]))
            return Result(DkimResult.Fail, "the body hash does not match the body", key);
        if (!hashes.VerifyHeaderSignature(signature, tags["h"].Split(':'), headerCanonicalization, key, b!))
            return Result(DkimResult.Fail, "the signature does not match the signed headers", key);
        return Result(DkimResult.Pass, key: key);
    }

    /// <summary>Hands MimeKit the key this checker already fetched and vetted.</summary>
    private sealed class FixedKeyLocator(AsymmetricKeyParameter key) : IDkimPublicKeyLocator
    {
        public AsymmetricKeyParameter LocatePublicKey(string methods, string domain, string selector, CancellationToken cancellationToken = default) => key;

        public Task<AsymmetricKeyParameter> LocatePublicKeyAsync(string methods, string domain, string selector, CancellationToken cancellationToken = default) =>
            Task.FromResult(key);
    }
}
