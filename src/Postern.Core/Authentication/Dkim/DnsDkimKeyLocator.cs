using MimeKit.Cryptography;
using Org.BouncyCastle.Crypto;

namespace Postern.Core.Authentication;

/// <summary>
/// Finds DKIM and ARC public keys at "selector._domainkey.domain" through <see cref="IDnsResolver"/>, and is
/// the <see cref="IDkimPublicKeyLocator"/> MimeKit's verifiers use. Failures are <see cref="DkimKeyException"/>s
/// that say whether DNS failed (temporary) or the key is missing or unusable (permanent). DNS is asked every time
/// (the resolver caches by TTL); the key parsed from the answer comes from a <see cref="DkimKeyCache"/>.
/// </summary>
public sealed class DnsDkimKeyLocator : IDkimPublicKeyLocator
{
    private readonly IDnsResolver _dns;
    private readonly DkimKeyCache _cache;

    /// <param name="dns">Where key records are asked for.</param>
    /// <param name="cache">Parsed keys by record text; <see cref="DkimKeyCache.Shared"/> when null.</param>
    public DnsDkimKeyLocator(IDnsResolver dns, DkimKeyCache? cache = null)
    {
        _dns = dns;
        _cache = cache ?? DkimKeyCache.Shared;
    }

    /// <summary>The key record for <paramref name="selector"/> at <paramref name="domain"/>; the first usable one if several are published.</summary>
    public async Task<DkimPublicKeyRecord> FindKeyAsync(string domain, string selector, CancellationToken cancellationToken = default)
    {
        if (!DkimNames.IsValidDomain(domain))
            throw new DkimKeyException($"'{domain}' is not a valid signing domain", temporary: false);
        if (!DkimNames.IsValidSelector(selector))
            throw new DkimKeyException($"'{selector}' is not a valid selector", temporary: false);

        var name = $"{selector}._domainkey.{domain}";
        var answer = await _dns.QueryTxtAsync(name, cancellationToken).ConfigureAwait(false);
        if (answer.IsTemporaryFailure)
            throw new DkimKeyException($"DNS lookup of {name} failed: {answer.Error ?? answer.Status.ToString()}", temporary: true);
        if (answer.Records.Count == 0)
            throw new DkimKeyException($"no key record at {name}", temporary: false);

        DkimKeyException? firstProblem = null;
        foreach (var text in answer.Records)
        {
            try
            {
                return _cache.Parse(text);
            }
            catch (DkimKeyException ex)
            {
                firstProblem ??= new DkimKeyException($"{name}: {ex.Message}", temporary: false);
            }
        }
        throw firstProblem!;
    }

    public async Task<AsymmetricKeyParameter> LocatePublicKeyAsync(string methods, string domain, string selector, CancellationToken cancellationToken = default)
    {
        CheckQueryMethods(methods);
        return (await FindKeyAsync(domain, selector, cancellationToken).ConfigureAwait(false)).Key;
    }

    /// <summary>MimeKit's synchronous path; Postern uses the asynchronous one, this blocks on it.</summary>
    public AsymmetricKeyParameter LocatePublicKey(string methods, string domain, string selector, CancellationToken cancellationToken = default) =>
        LocatePublicKeyAsync(methods, domain, selector, cancellationToken).GetAwaiter().GetResult();

    private static void CheckQueryMethods(string? methods)
    {
        // q= defaults to dns/txt, the only method there is (RFC 6376 §3.5).
        if (string.IsNullOrEmpty(methods))
            return;
        if (!methods.Split(':').Any(m => m.Trim() is "dns/txt" or "dns"))
            throw new DkimKeyException($"unsupported key query method q={methods}", temporary: false);
    }
}

/// <summary>Syntax of the names DKIM puts into DNS questions.</summary>
internal static class DkimNames
{
    /// <summary>A DNS domain of LDH labels (underscores allowed), at least two labels, none empty or over 63.</summary>
    public static bool IsValidDomain(string domain)
    {
        domain = domain.TrimEnd('.');
        if (domain.Length is 0 or > 253)
            return false;
        var labels = domain.Split('.');
        return labels.Length >= 2 && labels.All(IsLabel);
    }

    /// <summary>A selector: one or more dot-separated labels.</summary>
    public static bool IsValidSelector(string selector) =>
        selector.Length is > 0 and <= 253 && selector.Split('.').All(IsLabel);

    private static bool IsLabel(string label) =>
        label.Length is > 0 and <= 63 && label.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_');
}
