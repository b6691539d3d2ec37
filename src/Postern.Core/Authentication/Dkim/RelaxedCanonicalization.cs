using System.Security.Cryptography;

namespace Postern.Core.Authentication;

/// <summary>
/// The "relaxed" canonicalization of RFC 6376 §3.4.2 and §3.4.4, over raw bytes, for the DKIM and ARC
/// signatures Postern writes. It works on the bytes Postern sends, so a signature always covers exactly
/// what goes on the wire.
/// </summary>
public static class RelaxedCanonicalization
{
    /// <summary>
    /// One header field: name lower-cased, unfolded, runs of space and tab made one space, none around the
    /// colon or at the end; followed by CRLF unless <paramref name="withLineEnd"/> is false.
    /// </summary>
    public static byte[] Header(ReadOnlySpan<byte> field, bool withLineEnd = true)
    {
        var colon = field.IndexOf((byte)':');
        if (colon < 0)
            throw new ArgumentException("Not a header field: no colon.", nameof(field));
        var output = new List<byte>(field.Length + 2);
        foreach (var b in field[..colon].TrimEnd(" \t"u8))
            output.Add(b is >= (byte)'A' and <= (byte)'Z' ? (byte)(b + 32) : b);
        output.Add((byte)':');
        var pendingSpace = false;
        var started = false;
        foreach (var b in field[(colon + 1)..])
        {
            if (b is (byte)'\r' or (byte)'\n')
                continue;
            if (b is (byte)' ' or (byte)'\t')
            {
                pendingSpace = started;
                continue;
            }
            if (pendingSpace)
                output.Add((byte)' ');
            pendingSpace = false;
            started = true;
            output.Add(b);
        }
        if (withLineEnd)
        {
            output.Add((byte)'\r');
            output.Add((byte)'\n');
        }
        return output.ToArray();
    }

    /// <summary>The SHA-256 of the relaxed-canonical body read from <paramref name="body"/> (the bh= value, before base64).</summary>
    public static byte[] BodyHash(Stream body)
    {
        using var hash = new BodyHasher();
        var buffer = new byte[64 * 1024];
        int read;
        while ((read = body.Read(buffer)) > 0)
            hash.Append(buffer.AsSpan(0, read));
        return hash.Finish();
    }

    /// <summary>
    /// Hashes a body fed in pieces: trailing space and tab removed from each line, other runs of them made
    /// one space, empty lines at the end dropped, and a non-empty body ended with exactly one CRLF.
    /// </summary>
    private sealed class BodyHasher : IDisposable
    {
        private static readonly System.Buffers.SearchValues<byte> Special = System.Buffers.SearchValues.Create("\r\n \t"u8);

        private readonly IncrementalHash _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        private readonly byte[] _out = new byte[16 * 1024];
        private int _used;
        private bool _pendingSpace;
        private bool _pendingCr;
        private int _pendingLineEnds;
        private bool _any;

        public void Append(ReadOnlySpan<byte> data)
        {
            while (!data.IsEmpty)
            {
                // Runs of ordinary bytes go to the hash whole; only line ends and white space need a decision.
                var special = data.IndexOfAny(Special);
                var run = special < 0 ? data : data[..special];
                if (!run.IsEmpty)
                {
                    if (_pendingCr)
                    {
                        // A CR not followed by LF is content like any other byte.
                        _pendingCr = false;
                        Content([(byte)'\r']);
                    }
                    Content(run);
                    data = data[run.Length..];
                    continue;
                }
                var b = data[0];
                data = data[1..];
                if (_pendingCr)
                {
                    _pendingCr = false;
                    if (b == '\n')
                    {
                        EndLine();
                        continue;
                    }
                    Content([(byte)'\r']);
                }
                switch (b)
                {
                    case (byte)'\r':
                        _pendingCr = true;
                        break;
                    case (byte)'\n':
                        EndLine();
                        break;
                    default:
                        _pendingSpace = true;
                        break;
                }
            }
        }

        public byte[] Finish()
        {
            if (_pendingCr)
            {
                _pendingCr = false;
                Content([(byte)'\r']);
            }
            if (_any)
            {
                Put((byte)'\r');
                Put((byte)'\n');
            }
            Flush();
            return _hash.GetHashAndReset();
        }

        private void EndLine()
        {
            _pendingSpace = false;
            _pendingLineEnds++;
        }

        /// <summary>Content bytes: first the line ends and the space held back before them.</summary>
        private void Content(ReadOnlySpan<byte> run)
        {
            for (; _pendingLineEnds > 0; _pendingLineEnds--)
            {
                Put((byte)'\r');
                Put((byte)'\n');
            }
            if (_pendingSpace)
            {
                Put((byte)' ');
                _pendingSpace = false;
            }
            if (run.Length <= _out.Length - _used)
            {
                run.CopyTo(_out.AsSpan(_used));
                _used += run.Length;
            }
            else
            {
                Flush();
                _hash.AppendData(run);
            }
            _any = true;
        }

        private void Put(byte b)
        {
            if (_used == _out.Length)
                Flush();
            _out[_used++] = b;
        }

        private void Flush()
        {
            _hash.AppendData(_out, 0, _used);
            _used = 0;
        }

        public void Dispose() => _hash.Dispose();
    }
}
