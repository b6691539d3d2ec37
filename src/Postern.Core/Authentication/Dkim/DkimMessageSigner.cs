using MimeKit;
using MimeKit.Cryptography;
using Postern.Core.Spool;

namespace Postern.Core.Authentication;

/// <summary>
/// DKIM-signs outbound mail for a tenant's domain with MimeKit's <see cref="DkimSigner"/>, over the bytes Postern
/// sends (<see cref="SigningView"/>): rsa-sha256 (or
/// ed25519-sha256), relaxed/relaxed, the headers a reader sees, and From, Subject and the other identity
/// headers over-signed so that nobody downstream can add a second one without breaking the signature
/// (RFC 6376 §8.15).
/// </summary>
public sealed class DkimMessageSigner
{
    /// <summary>Signed when present.</summary>
    public static readonly IReadOnlyList<string> DefaultHeaders =
    [
        "from", "sender", "reply-to", "subject", "date", "message-id", "to", "cc", "in-reply-to", "references",
        "mime-version", "content-type", "content-transfer-encoding", "content-disposition", "list-unsubscribe", "list-unsubscribe-post",
    ];

    /// <summary>Signed once more than they occur, so that adding another instance breaks the signature.</summary>
    public static readonly IReadOnlyList<string> DefaultOversignedHeaders = ["from", "sender", "reply-to", "subject", "date", "message-id", "to", "cc"];

    private readonly DkimSigningKey _key;

    public DkimMessageSigner(DkimSigningKey key, string domain, string selector)
    {
        if (!DkimNames.IsValidDomain(domain))
            throw new ArgumentException($"'{domain}' is not a valid DKIM signing domain.", nameof(domain));
        if (!DkimNames.IsValidSelector(selector))
            throw new ArgumentException($"'{selector}' is not a valid DKIM selector.", nameof(selector));
        _key = key;
        Domain = domain;
        Selector = selector;
    }

    public string Domain { get; }

    public string Selector { get; }

    public IReadOnlyList<string> Headers { get; init; } = DefaultHeaders;

    public IReadOnlyList<string> OversignedHeaders { get; init; } = DefaultOversignedHeaders;

    /// <summary>When set, signatures carry x= this long after t= (RFC 6376 §3.5).</summary>
    public TimeSpan? SignatureLifetime { get; init; }

    /// <summary>The clock for t=.</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    /// <summary>
    /// Adds a DKIM-Signature at the top of <paramref name="message"/>, computed by MimeKit's signer over its bytes
    /// as they will be sent, and returns it; refuses a message without a From header, which DKIM requires signing.
    /// </summary>
    public byte[] Sign(RawMessage message)
    {
        if (!message.Contains("from"))
            throw new InvalidOperationException("The message has no From header; DKIM signatures must cover From (RFC 6376 §5.4).");
        var view = SigningView.Create(message);
        var signer = new ClockedDkimSigner(_key, Domain, Selector, TimeProvider)
        {
            HeaderCanonicalizationAlgorithm = DkimCanonicalizationAlgorithm.Relaxed,
            BodyCanonicalizationAlgorithm = DkimCanonicalizationAlgorithm.Relaxed,
            SignaturesExpireAfter = SignatureLifetime,
        };
        signer.Sign(view, HeadersFor(message, Headers, OversignedHeaders));
        var field = SigningView.ToBytes(view.Headers[0]);
        message.Insert(0, field);
        return field;
    }

    /// <summary>
    /// Signs a <see cref="MimeMessage"/> as MimeKit writes it (CRLF line ends) and adds the DKIM-Signature at
    /// its top; the message must be sent exactly as MimeKit writes it afterwards.
    /// </summary>
    public Header Sign(MimeMessage message)
    {
        var header = MimeMessageBytes.ToHeader(Sign(MimeMessageBytes.ToRaw(message)));
        message.Headers.Insert(0, header);
        return header;
    }

    /// <summary>The h= list: each wanted header as often as it occurs, plus one for the over-signed ones.</summary>
    internal static List<string> HeadersFor(RawMessage message, IEnumerable<string> wanted, IEnumerable<string> oversigned)
    {
        var oversign = new HashSet<string>(oversigned, StringComparer.OrdinalIgnoreCase);
        var list = new List<string>();
        foreach (var name in wanted.Select(n => n.ToLowerInvariant()).Distinct())
        {
            var count = message.IndexesOf(name).Count() + (oversign.Contains(name) ? 1 : 0);
            for (var i = 0; i < count; i++)
                list.Add(name);
        }
        return list;
    }

    private sealed class ClockedDkimSigner(DkimSigningKey key, string domain, string selector, TimeProvider time)
        : DkimSigner(key.PrivateKey, domain, selector, key.Algorithm)
    {
        protected override long GetTimestamp() => time.GetUtcNow().ToUnixTimeSeconds();

        /// <summary>RSA through .NET's native implementation (see <see cref="NativeRsaSigner"/>).</summary>
        protected override Org.BouncyCastle.Crypto.ISigner CreateSigningContext() =>
            SignatureAlgorithm == DkimSignatureAlgorithm.RsaSha256 && key.NativeRsa is { } rsa ? new NativeRsaSigner(rsa) : base.CreateSigningContext();
    }
}
