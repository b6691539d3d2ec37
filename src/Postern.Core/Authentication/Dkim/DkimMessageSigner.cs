using System.Security.Cryptography;
using System.Text;
using MimeKit;
using Postern.Core.Spool;

namespace Postern.Core.Authentication;

/// <summary>
/// DKIM-signs outbound mail for a tenant's domain over the bytes Postern sends: rsa-sha256 (or
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
    /// Adds a DKIM-Signature at the top of <paramref name="message"/>, computed over its bytes as they will be
    /// sent, and returns it; refuses a message without a From header, which DKIM requires signing.
    /// </summary>
    public byte[] Sign(RawMessage message)
    {
        if (!message.Contains("from"))
            throw new InvalidOperationException("The message has no From header; DKIM signatures must cover From (RFC 6376 §5.4).");
        var signed = SignatureFields.HeaderList(message, Headers, OversignedHeaders);
        byte[] bodyHash;
        using (var body = message.OpenBody())
            bodyHash = RelaxedCanonicalization.BodyHash(body);
        var t = TimeProvider.GetUtcNow().ToUnixTimeSeconds();
        var tags = new List<string>
        {
            "v=1", "a=" + SignatureFields.Algorithm(_key), "c=relaxed/relaxed", "d=" + Domain, "s=" + Selector, $"t={t}",
        };
        if (SignatureLifetime is { } lifetime)
            tags.Add($"x={t + (long)lifetime.TotalSeconds}");
        tags.Add("h=" + string.Join(':', signed));
        tags.Add("bh=" + Convert.ToBase64String(bodyHash));
        var unsigned = SignatureFields.Unsigned("DKIM-Signature", tags);

        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        SignatureFields.AppendSignedHeaders(hash, message, signed);
        hash.AppendData(RelaxedCanonicalization.Header(Encoding.ASCII.GetBytes(unsigned), withLineEnd: false));
        var field = SignatureFields.Complete(unsigned, SignatureFields.Sign(_key, hash));
        message.Insert(0, field);
        return field;
    }

    /// <summary>
    /// Signs a <see cref="MimeMessage"/> as MimeKit writes it (CRLF line ends) and adds the DKIM-Signature at
    /// its top; the message must be sent exactly as MimeKit writes it afterwards.
    /// </summary>
    public Header Sign(MimeMessage message)
    {
        var raw = MimeMessageBytes.ToRaw(message);
        var field = Sign(raw);
        var header = MimeMessageBytes.ToHeader(field);
        message.Headers.Insert(0, header);
        return header;
    }
}
