using System.Globalization;
using MimeKit;
using MimeKit.Cryptography;
using Org.BouncyCastle.Crypto;

namespace Postern.Core.Authentication;

/// <summary>
/// Verifies every DKIM-Signature of a message (RFC 6376). MimeKit's <see cref="DkimVerifier"/> does the
/// canonicalization and cryptography; this class adds what a receiver needs around it: a result per
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
    public async Task<IReadOnlyList<DkimSignatureResult>> VerifyAsync(MimeMessage message, CancellationToken cancellationToken = default)
    {
        var results = new List<DkimSignatureResult>();
        foreach (var header in message.Headers.Where(h => h.Id == HeaderId.DkimSignature).ToArray())
            results.Add(await VerifySignatureAsync(message, header, cancellationToken).ConfigureAwait(false));
        return results;
    }

    /// <summary>Verifies one DKIM-Signature header of <paramref name="message"/>.</summary>
    public async Task<DkimSignatureResult> VerifySignatureAsync(MimeMessage message, Header signature, CancellationToken cancellationToken = default)
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

        var verifier = new DkimVerifier(new FixedKeyLocator(key.Key)) { MinimumRsaKeyLength = MinimumRsaKeyBits };
        try
        {
            if (await verifier.VerifyAsync(message, signature, cancellationToken).ConfigureAwait(false))
                return Result(DkimResult.Pass, key: key);
        }
        catch (FormatException ex)
        {
            return Result(DkimResult.Neutral, ex.Message, key);
        }
        return Result(DkimResult.Fail,
            DkimBodyHash.Matches(message, tags) ? "the signature does not match the signed headers" : "the body hash does not match the body",
            key);
    }

    /// <summary>Hands MimeKit the key this checker already fetched and vetted.</summary>
    private sealed class FixedKeyLocator(AsymmetricKeyParameter key) : IDkimPublicKeyLocator
    {
        public AsymmetricKeyParameter LocatePublicKey(string methods, string domain, string selector, CancellationToken cancellationToken = default) => key;

        public Task<AsymmetricKeyParameter> LocatePublicKeyAsync(string methods, string domain, string selector, CancellationToken cancellationToken = default) =>
            Task.FromResult(key);
    }
}

/// <summary>Checks a signature's bh= on its own, so a failure can say whether the body or the headers changed.</summary>
internal sealed class DkimBodyHash : DkimVerifierBase
{
    private DkimBodyHash(IDkimPublicKeyLocator locator)
        : base(locator)
    {
    }

    public static bool Matches(MimeMessage message, IReadOnlyDictionary<string, string> tags)
    {
        var algorithm = tags.GetValueOrDefault("a") == "ed25519-sha256" ? DkimSignatureAlgorithm.Ed25519Sha256 : DkimSignatureAlgorithm.RsaSha256;
        var canonicalization = tags.GetValueOrDefault("c", "simple/simple").Split('/');
        var body = canonicalization.Length > 1 && canonicalization[1].Trim() == "relaxed"
            ? DkimCanonicalizationAlgorithm.Relaxed
            : DkimCanonicalizationAlgorithm.Simple;
        var maxLength = tags.TryGetValue("l", out var l) && int.TryParse(l, NumberStyles.None, CultureInfo.InvariantCulture, out var length) ? length : -1;
        var options = FormatOptions.Default.Clone();
        options.NewLineFormat = NewLineFormat.Dos;
        try
        {
            return VerifyBodyHash(options, message, algorithm, body, maxLength, DkimTagList.WithoutWhitespace(tags.GetValueOrDefault("bh", "")));
        }
        catch (FormatException)
        {
            return false;
        }
    }
}
