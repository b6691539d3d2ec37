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
/// the body is streamed once per length limit (l=, almost always none) into both canonicalizations and their hashes,
/// never held in memory again, and a signature then costs one RSA verification. The canonicalization is MimeKit's (RFC 6376 §3.4), byte for byte.
/// With <c>openBody</c> the body hashed is the bytes received (what was signed); without it, the body as MimeKit
/// writes the parsed message, which for a well-formed message is the same bytes.
/// One instance per message, used by one reader at a time.
/// </summary>
internal sealed class DkimMessageHashes(MimeMessage message, Func<Stream>? openBody = null)
{
    private static readonly byte[] CrLf = "\r\n"u8.ToArray();
    private readonly Dictionary<(DkimCanonicalizationAlgorithm, int), string> _bodyHashes = [];

    public MimeMessage Message { get; } = message;

    /// <summary>Whether bh= is the SHA-256 of the body canonicalized by <paramref name="canonicalization"/>, cut at l= (-1: all).</summary>
    public bool BodyHashMatches(DkimCanonicalizationAlgorithm canonicalization, int maxLength, string bodyHash) =>
        string.Equals(BodyHash(canonicalization, maxLength), DkimTagList.WithoutWhitespace(bodyHash), StringComparison.Ordinal);

    /// <summary>The base64 SHA-256 of the canonicalized body, computed once per (canonicalization, length limit).</summary>
    public string BodyHash(DkimCanonicalizationAlgorithm canonicalization, int maxLength)
    {
        if (_bodyHashes.TryGetValue((canonicalization, maxLength), out var known))
            return known;
        // One pass over the body as MimeKit writes it hashes it both ways (a DKIM signature and an AMS may differ in
        // c=), streamed: a message's body is never held again here, whatever its size.
        using var simple = new BodyHasher(relaxed: false, maxLength);
        using var relaxed = new BodyHasher(relaxed: true, maxLength);
        if (openBody is not null)
        {
            // The body as it was received: the bytes its signers signed, without MimeKit writing the parsed body out again.
            using var body = openBody();
            var buffer = ArrayPool<byte>.Shared.Rent(16 * 1024);
            try
            {
                int n;
                while ((n = body.Read(buffer)) > 0)
                {
                    simple.Write(buffer.AsSpan(0, n));
                    relaxed.Write(buffer.AsSpan(0, n));
                }
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }
        else if (Message.Body is not null)
        {
            var options = FormatOptions.Default.Clone();
            options.NewLineFormat = NewLineFormat.Dos;
            using var stream = new BodyStream(simple, relaxed);
            Message.Body.WriteTo(options, stream, contentOnly: true);
        }
        _bodyHashes[(DkimCanonicalizationAlgorithm.Simple, maxLength)] = simple.Finish();
        _bodyHashes[(DkimCanonicalizationAlgorithm.Relaxed, maxLength)] = relaxed.Finish();
        return _bodyHashes[(canonicalization, maxLength)];
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

    /// <summary>
    /// bh= of a signature Postern writes: the base64 SHA-256 of <paramref name="body"/> (the bytes it sends)
    /// canonicalized relaxed, whole — the same canonicalization, byte for byte, that verification holds to MimeKit's.
    /// </summary>
    public static string RelaxedBodyHash(Stream body)
    {
        using var relaxed = new BodyHasher(relaxed: true, maxLength: -1);
        var buffer = ArrayPool<byte>.Shared.Rent(16 * 1024);
        try
        {
            int n;
            while ((n = body.Read(buffer)) > 0)
                relaxed.Write(buffer.AsSpan(0, n));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
        return relaxed.Finish();
    }

    /// <summary>
    /// What b= of a signature Postern writes signs: the SHA-256 of <paramref name="fields"/> (name and the raw value
    /// after the colon) canonicalized relaxed (RFC 6376 §3.4.2), each with CRLF, then the signature field itself,
    /// its b= still empty, without one.
    /// </summary>
    public static byte[] RelaxedHeaderHash(IEnumerable<(string Name, byte[] Value)> fields, string signatureName, ReadOnlySpan<byte> signatureValue)
    {
        using var data = new HashedData();
        foreach (var (name, value) in fields)
            Write(data, name, [], value, DkimCanonicalizationAlgorithm.Relaxed, isSignature: false);
        Write(data, signatureName, [], signatureValue, DkimCanonicalizationAlgorithm.Relaxed, isSignature: true);
        return data.Hash();
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

    private static bool IsWhitespace(byte c) => c is (byte)' ' or (byte)'\t' or (byte)'\r' or (byte)'\n';

    /// <summary>
    /// One body canonicalization (RFC 6376 §3.4.3 simple, §3.4.4 relaxed) fed in pieces and hashed as it goes, cut at
    /// l=. A bare LF counts as CRLF, as MimeKit's new-line filter makes it; line ends (and in relaxed, whitespace)
    /// are held back until a character shows they are not at the end of the body or line.
    /// </summary>
    private sealed class BodyHasher(bool relaxed, long maxLength) : IDisposable
    {
        private static readonly SearchValues<byte> LineEndBytes = SearchValues.Create("\r\n"u8);
        private static readonly SearchValues<byte> LineEndOrWhitespaceBytes = SearchValues.Create("\r\n \t"u8);
        private readonly IncrementalHash _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        private readonly byte[] _buffer = new byte[16 * 1024];
        private int _buffered;
        private long _room = maxLength < 0 ? long.MaxValue : maxLength;
        private bool _cr;          // a CR that a LF may follow
        private int _lineEnds;     // simple: line ends not written yet; relaxed: empty lines not written yet
        private bool _space;       // relaxed: whitespace since the line's last character
        private bool _content;     // relaxed: the line has a character other than whitespace

        public void Write(ReadOnlySpan<byte> data)
        {
            var special = relaxed ? LineEndOrWhitespaceBytes : LineEndBytes;
            while (!data.IsEmpty)
            {
                var run = data.IndexOfAny(special);
                if (run != 0)
                {
                    CarriageReturnWasText();
                    Characters(run < 0 ? data : data[..run]);
                    if (run < 0)
                        return;
                    data = data[run..];
                }
                var c = data[0];
                data = data[1..];
                if (c == '\n')
                {
                    _cr = false;
                    LineEnd();
                    continue;
                }
                CarriageReturnWasText();
                if (c == '\r')
                    _cr = true;
                else
                    _space = true;
            }
        }

        /// <summary>The hash, once everything is written.</summary>
        public string Finish()
        {
            CarriageReturnWasText();
            // Simple: exactly one line end after the last character (an empty body is one CRLF); relaxed: none
            // after the last line with a character, one if that line had none (an empty body stays empty).
            if (!relaxed || _content)
                Emit(CrLf);
            _hash.AppendData(_buffer, 0, _buffered);
            return Convert.ToBase64String(_hash.GetHashAndReset());
        }

        public void Dispose() => _hash.Dispose();

        private void CarriageReturnWasText()
        {
            if (!_cr)
                return;
            _cr = false;
            Characters("\r"u8);
        }

        private void LineEnd()
        {
            _space = false;
            if (relaxed && _content)
            {
                Emit(CrLf);
                _content = false;
            }
            else
            {
                _lineEnds++;
            }
        }

        private void Characters(ReadOnlySpan<byte> text)
        {
            if (!relaxed || !_content)
            {
                for (; _lineEnds > 0; _lineEnds--)
                    Emit(CrLf);
                _content = true;
            }
            if (_space)
            {
                Emit(" "u8);
                _space = false;
            }
            Emit(text);
        }

        private void Emit(ReadOnlySpan<byte> bytes)
        {
            if (bytes.Length > _room)
                bytes = bytes[..(int)_room];
            _room -= bytes.Length;
            while (!bytes.IsEmpty)
            {
                var n = Math.Min(bytes.Length, _buffer.Length - _buffered);
                bytes[..n].CopyTo(_buffer.AsSpan(_buffered));
                _buffered += n;
                bytes = bytes[n..];
                if (_buffered == _buffer.Length)
                {
                    _hash.AppendData(_buffer);
                    _buffered = 0;
                }
            }
        }
    }

    /// <summary>Where MimeKit writes the body: every piece goes to both canonicalizations.</summary>
    private sealed class BodyStream(BodyHasher simple, BodyHasher relaxed) : Stream
    {
        public override bool CanRead => false;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            simple.Write(buffer);
            relaxed.Write(buffer);
        }

        public override void Flush()
        {
        }

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();
    }

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
