using System.Buffers;
using System.Security.Cryptography;
using System.Text;
using MimeKit;
using MimeKit.Cryptography;
using Org.BouncyCastle.Crypto.Parameters;
using Org.BouncyCastle.Crypto.Signers;

namespace Postern.Core.Authentication;

/// <summary>
/// The cryptographic half of verifying a message's DKIM signatures and ARC set, with .NET's native SHA-256 and RSA
/// (OpenSSL). MimeKit's verifiers hash with BouncyCastle's managed SHA-256 and verify RSA with its managed big-integer
/// arithmetic — about half a millisecond per signature, and the body hashed again for every signature — so
/// Postern lets MimeKit validate the headers' syntax and the chain's structure and does the hashing and the RSA here:
/// the body is written out once per message and hashed once per (canonicalization, length limit), and a signature
/// then costs one RSA verification. The canonicalization is MimeKit's (RFC 6376 §3.4), byte for byte.
/// One instance per message, used by one reader at a time.
/// </summary>
internal sealed class DkimMessageHashes(MimeMessage message)
{
    private static readonly byte[] CrLf = "\r\n"u8.ToArray();
    private readonly Dictionary<(DkimCanonicalizationAlgorithm, int), string> _bodyHashes = [];
    private byte[]? _body;

    public MimeMessage Message { get; } = message;

    /// <summary>Whether bh= is the SHA-256 of the body canonicalized by <paramref name="canonicalization"/>, cut at l= (-1: all).</summary>
    public bool BodyHashMatches(DkimCanonicalizationAlgorithm canonicalization, int maxLength, string bodyHash) =>
        string.Equals(BodyHash(canonicalization, maxLength), DkimTagList.WithoutWhitespace(bodyHash), StringComparison.Ordinal);

    /// <summary>The base64 SHA-256 of the canonicalized body, computed once per (canonicalization, length limit).</summary>
    public string BodyHash(DkimCanonicalizationAlgorithm canonicalization, int maxLength)
    {
        if (_bodyHashes.TryGetValue((canonicalization, maxLength), out var known))
            return known;
        var canonical = new ArrayBufferWriter<byte>(BodyBytes().Length + 2);
        if (canonicalization == DkimCanonicalizationAlgorithm.Relaxed)
            CanonicalizeRelaxed(BodyBytes(), canonical);
        else
            CanonicalizeSimple(BodyBytes(), canonical);
        var span = canonical.WrittenSpan;
        if (maxLength >= 0 && maxLength < span.Length)
            span = span[..maxLength];
        var hash = Convert.ToBase64String(SHA256.HashData(span));
        _bodyHashes[(canonicalization, maxLength)] = hash;
        return hash;
    }

    /// <summary>
    /// Verifies b= of a DKIM-Signature or ARC-Message-Signature: the fields named in h= (each occurrence from the
    /// bottom up, RFC 6376 §5.4.2), then the signature field itself with b= emptied.
    /// </summary>
    public bool VerifyHeaderSignature(Header signature, IReadOnlyList<string> signedFields, DkimCanonicalizationAlgorithm canonicalization,
        DkimPublicKeyRecord key, string b)
    {
        if (WithoutSignatureValue(signature) is not { } unsigned)
            return false;
        using var data = new HashedData();
        var counts = new Dictionary<string, int>(StringComparer.OrdinalIgnoreCase);
        foreach (var field in signedFields)
        {
            var name = field.Trim();
            var headers = name.StartsWith("Content-", StringComparison.OrdinalIgnoreCase) ? Message.Body?.Headers : Message.Headers;
            if (headers is null)
                continue;
            counts.TryGetValue(name, out var seen);
            var header = NthFromBottom(headers, name, seen);
            if (header is null)
                continue;
            Write(data, header.Field, header.RawField, header.RawValue, canonicalization, isSignature: false);
            counts[name] = seen + 1;
        }
        Write(data, signature.Field, signature.RawField, unsigned, canonicalization, isSignature: true);
        return Verify(key, data.Hash(), b);
    }

    /// <summary>Verifies b= of an ARC-Seal (RFC 8617 §5.1.1): every earlier set's fields, then this set's, relaxed, the seal last with b= emptied.</summary>
    public static bool VerifySeal(IEnumerable<Header> setsInOrder, Header seal, DkimPublicKeyRecord key, string b)
    {
        if (WithoutSignatureValue(seal) is not { } unsigned)
            return false;
        using var data = new HashedData();
        foreach (var header in setsInOrder)
            Write(data, header.Field, header.RawField, header.RawValue, DkimCanonicalizationAlgorithm.Relaxed, isSignature: false);
        Write(data, seal.Field, seal.RawField, unsigned, DkimCanonicalizationAlgorithm.Relaxed, isSignature: true);
        return Verify(key, data.Hash(), b);
    }

    /// <summary>c= as (header, body) canonicalization: simple/simple when absent, body simple when only one is named.</summary>
    public static (DkimCanonicalizationAlgorithm Header, DkimCanonicalizationAlgorithm Body) ParseCanonicalization(string? c)
    {
        var parts = (c ?? "simple/simple").ToLowerInvariant().Split('/');
        static DkimCanonicalizationAlgorithm Of(string name) =>
            name.Trim() == "relaxed" ? DkimCanonicalizationAlgorithm.Relaxed : DkimCanonicalizationAlgorithm.Simple;
        return (Of(parts[0]), parts.Length > 1 ? Of(parts[1]) : DkimCanonicalizationAlgorithm.Simple);
    }

    private static bool Verify(DkimPublicKeyRecord key, byte[] hash, string b)
    {
        byte[] signature;
        try
        {
            signature = Convert.FromBase64String(DkimTagList.WithoutWhitespace(b));
        }
        catch (FormatException)
        {
            return false;
        }
        if (key.Key is Ed25519PublicKeyParameters ed25519)
        {
            // RFC 8463: ed25519-sha256 signs the SHA-256 of the canonicalized header data.
            var signer = new Ed25519Signer();
            signer.Init(false, ed25519);
            signer.BlockUpdate(hash, 0, hash.Length);
            return signer.VerifySignature(signature);
        }
        try
        {
            return key.NativeRsa.VerifyHash(hash, signature, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        }
        catch (CryptographicException)
        {
            return false;
        }
    }

    private static Header? NthFromBottom(HeaderList headers, string name, int n)
    {
        for (var i = headers.Count - 1; i >= 0; i--)
        {
            if (headers[i].Field.Equals(name, StringComparison.OrdinalIgnoreCase) && n-- == 0)
                return headers[i];
        }
        return null;
    }

    /// <summary>One field as RFC 6376 §3.4.1/§3.4.2 canonicalize it; the signature field gets no line end.</summary>
    private static void Write(HashedData data, string field, byte[] rawField, ReadOnlySpan<byte> value, DkimCanonicalizationAlgorithm canonicalization,
        bool isSignature)
    {
        if (canonicalization == DkimCanonicalizationAlgorithm.Relaxed)
        {
            data.Append(Encoding.ASCII.GetBytes(field.ToLowerInvariant()));
            data.Append((byte)':');
            var i = 0;
            while (i < value.Length && IsWhitespace(value[i]))
                i++;
            while (i < value.Length)
            {
                var start = i;
                while (i < value.Length && IsWhitespace(value[i]))
                    i++;
                if (i >= value.Length)
                    break;
                if (i > start)
                    data.Append((byte)' ');
                start = i;
                while (i < value.Length && !IsWhitespace(value[i]))
                    i++;
                data.Append(value.Slice(start, i - start));
            }
            if (!isSignature)
                data.Append(CrLf);
            return;
        }

        var length = value.Length;
        if (isSignature && length > 0 && value[length - 1] == '\n')
        {
            length--;
            if (length > 0 && value[length - 1] == '\r')
                length--;
        }
        data.AppendWithCrLf(rawField);
        data.Append((byte)':');
        data.AppendWithCrLf(value[..length]);
    }

    /// <summary>The field's raw value with the value of its b= tag removed (the tag itself kept), as it was when it was signed; null without b=.</summary>
    private static byte[]? WithoutSignatureValue(Header header)
    {
        var raw = header.RawValue;
        var index = 0;
        int? valueStart = null;
        var valueEnd = 0;
        while (index < raw.Length)
        {
            while (index < raw.Length && IsWhitespace(raw[index]))
                index++;
            if (index + 2 < raw.Length)
            {
                var name = raw[index++];
                while (index < raw.Length && IsWhitespace(raw[index]))
                    index++;
                if (index < raw.Length && raw[index] == '=' && name == 'b')
                {
                    valueStart = ++index;
                    while (index < raw.Length && raw[index] != ';')
                        index++;
                    valueEnd = index;
                    if (index == raw.Length && raw[index - 1] == '\n')
                    {
                        valueEnd--;
                        if (raw[valueEnd - 1] == '\r')
                            valueEnd--;
                    }
                    break;
                }
            }
            while (index < raw.Length && raw[index] != ';')
                index++;
            if (index < raw.Length)
                index++;
        }
        if (valueStart is not { } start)
            return null;
        var stripped = new byte[raw.Length - (valueEnd - start)];
        raw.AsSpan(0, start).CopyTo(stripped);
        raw.AsSpan(valueEnd).CopyTo(stripped.AsSpan(start));
        return stripped;
    }

    /// <summary>The body as MimeKit writes it for hashing, CRLF line ends; written once per message.</summary>
    private byte[] BodyBytes()
    {
        if (_body is not null)
            return _body;
        if (Message.Body is null)
            return _body = [];
        var options = FormatOptions.Default.Clone();
        options.NewLineFormat = NewLineFormat.Dos;
        using var stream = new MemoryStream();
        Message.Body.WriteTo(options, stream, contentOnly: true);
        return _body = ToCrLf(stream.GetBuffer().AsSpan(0, (int)stream.Length));
    }

    private static byte[] ToCrLf(ReadOnlySpan<byte> text)
    {
        var bareLf = 0;
        for (var i = 0; i < text.Length; i++)
        {
            if (text[i] == '\n' && (i == 0 || text[i - 1] != '\r'))
                bareLf++;
        }
        if (bareLf == 0)
            return text.ToArray();
        var result = new byte[text.Length + bareLf];
        var n = 0;
        for (var i = 0; i < text.Length; i++)
        {
            if (text[i] == '\n' && (i == 0 || text[i - 1] != '\r'))
                result[n++] = (byte)'\r';
            result[n++] = text[i];
        }
        return result;
    }

    /// <summary>RFC 6376 §3.4.3: the body unchanged but for empty lines at its end; an empty body is one CRLF.</summary>
    private static void CanonicalizeSimple(ReadOnlySpan<byte> body, ArrayBufferWriter<byte> output)
    {
        var end = body.Length;
        while (end >= 4 && body[(end - 4)..end].SequenceEqual("\r\n\r\n"u8))
            end -= 2;
        if (end == 2 && body[..2].SequenceEqual(CrLf))
            end = 0;
        output.Write(body[..end]);
        // A body without a final line end (or none at all) gets one.
        if (end < 2 || !body[(end - 2)..end].SequenceEqual(CrLf))
            output.Write(CrLf);
    }

    /// <summary>RFC 6376 §3.4.4: whitespace runs to one space, none at line ends, no empty lines at the end; an empty body stays empty.</summary>
    private static void CanonicalizeRelaxed(ReadOnlySpan<byte> body, ArrayBufferWriter<byte> output)
    {
        var emptyLines = 0;
        var start = 0;
        var wroteAny = false;
        var lastWasLineEnd = true;
        while (start < body.Length)
        {
            var lf = body[start..].IndexOf((byte)'\n');
            var line = lf < 0 ? body[start..] : body.Slice(start, lf);
            var hasLineEnd = lf >= 0;
            start = hasLineEnd ? start + lf + 1 : body.Length;
            if (hasLineEnd && line.Length > 0 && line[^1] == '\r')
                line = line[..^1];

            var buffer = output.GetSpan(line.Length + 2 + (emptyLines * 2));
            var n = 0;
            var pendingSpace = false;
            var content = false;
            foreach (var c in line)
            {
                if (c is (byte)' ' or (byte)'\t')
                {
                    pendingSpace = true;
                    continue;
                }
                if (!content)
                {
                    for (; emptyLines > 0; emptyLines--)
                    {
                        buffer[n++] = (byte)'\r';
                        buffer[n++] = (byte)'\n';
                    }
                    content = true;
                }
                if (pendingSpace)
                {
                    buffer[n++] = (byte)' ';
                    pendingSpace = false;
                }
                buffer[n++] = c;
            }
            if (!content)
            {
                if (hasLineEnd)
                    emptyLines++;
                continue;
            }
            if (hasLineEnd)
            {
                buffer[n++] = (byte)'\r';
                buffer[n++] = (byte)'\n';
            }
            output.Advance(n);
            wroteAny = true;
            lastWasLineEnd = hasLineEnd;
        }
        if (wroteAny && !lastWasLineEnd)
            output.Write(CrLf);
    }

    private static bool IsWhitespace(byte c) => c is (byte)' ' or (byte)'\t' or (byte)'\r' or (byte)'\n';

    /// <summary>Canonical header data fed straight into SHA-256.</summary>
    private sealed class HashedData : IDisposable
    {
        private readonly IncrementalHash _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);

        public void Append(ReadOnlySpan<byte> bytes) => _hash.AppendData(bytes);

        public void Append(byte b) => _hash.AppendData([b]);

        /// <summary>Raw header bytes with every bare LF made CRLF, as MimeKit's new-line filter writes them.</summary>
        public void AppendWithCrLf(ReadOnlySpan<byte> bytes)
        {
            var from = 0;
            for (var i = 0; i < bytes.Length; i++)
            {
                if (bytes[i] == '\n' && (i == 0 || bytes[i - 1] != '\r'))
                {
                    _hash.AppendData(bytes[from..i]);
                    _hash.AppendData(CrLf);
                    from = i + 1;
                }
            }
            _hash.AppendData(bytes[from..]);
        }

        public byte[] Hash() => _hash.GetHashAndReset();

        public void Dispose() => _hash.Dispose();
    }
}
