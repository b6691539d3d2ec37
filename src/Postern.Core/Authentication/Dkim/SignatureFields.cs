using System.Security.Cryptography;
using System.Text;
using Org.BouncyCastle.Crypto.Parameters;
using Org.BouncyCastle.Crypto.Signers;
using Postern.Core.Spool;

namespace Postern.Core.Authentication;

/// <summary>
/// What DKIM-Signature and the ARC header fields have in common when Postern writes them (RFC 6376 §3.5,
/// §5.4; RFC 8617 §4.1): which header fields h= lists, the bytes a signature covers, the signing itself,
/// and folding the field to lines a mail server will carry.
/// </summary>
internal static class SignatureFields
{
    private const int LineLength = 76;

    /// <summary>The h= list: each wanted name as often as the message has it, once more for the over-signed ones.</summary>
    public static List<string> HeaderList(RawMessage message, IEnumerable<string> wanted, IEnumerable<string> oversigned)
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

    /// <summary>
    /// The relaxed-canonical fields <paramref name="names"/> selects, in h= order: for a name listed n times,
    /// its instances from the bottom up; a name listed more often than it occurs adds nothing (RFC 6376 §5.4.2).
    /// </summary>
    public static void AppendSignedHeaders(IncrementalHash hash, RawMessage message, IEnumerable<string> names)
    {
        var used = new Dictionary<string, int>(StringComparer.OrdinalIgnoreCase);
        foreach (var name in names)
        {
            var instances = message.IndexesOf(name).ToList();
            var n = used.GetValueOrDefault(name);
            used[name] = n + 1;
            if (n < instances.Count)
                hash.AppendData(RelaxedCanonicalization.Header(message.Fields[instances[instances.Count - 1 - n]]));
        }
    }

    /// <summary>
    /// The field "<paramref name="name"/>: tag; tag; …; b=" folded, without b='s value or a line end: what is
    /// hashed as the signature field itself, and, with the signature appended, what is sent.
    /// </summary>
    public static string Unsigned(string name, IEnumerable<string> tags)
    {
        var text = new StringBuilder(name).Append(':');
        var column = text.Length;
        foreach (var tag in tags.Append("b="))
        {
            var item = tag == "b=" ? tag : tag + ";";
            foreach (var piece in Pieces(item))
            {
                if (column + 1 + piece.Length > LineLength && column > name.Length + 1)
                {
                    text.Append("\r\n\t");
                    column = 1;
                }
                else if (!piece.StartsWith(':'))
                {
                    text.Append(' ');
                    column++;
                }
                text.Append(piece);
                column += piece.Length;
            }
        }
        return text.ToString();
    }

    /// <summary>The signed field as sent: <paramref name="unsigned"/> with the base64 signature folded after b=, and CRLF.</summary>
    public static byte[] Complete(string unsigned, byte[] signature)
    {
        var text = new StringBuilder(unsigned);
        var column = unsigned.Length - unsigned.LastIndexOf('\n') - 1;
        var value = Convert.ToBase64String(signature);
        for (var at = 0; at < value.Length;)
        {
            if (column >= LineLength)
            {
                text.Append("\r\n\t ");
                column = 2;
            }
            var take = Math.Min(value.Length - at, LineLength - column);
            text.Append(value, at, take);
            at += take;
            column += take;
        }
        return Encoding.ASCII.GetBytes(text.Append("\r\n").ToString());
    }

    /// <summary>Signs what <paramref name="hash"/> holds: RSA PKCS#1 v1.5 over its SHA-256, or Ed25519 over it (RFC 8463).</summary>
    public static byte[] Sign(DkimSigningKey key, IncrementalHash hash)
    {
        var digest = hash.GetHashAndReset();
        if (key.NativeRsa is { } rsa)
            return rsa.SignHash(digest, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        if (key.PrivateKey is Ed25519PrivateKeyParameters ed)
        {
            var signer = new Ed25519Signer();
            signer.Init(true, ed);
            signer.BlockUpdate(digest, 0, digest.Length);
            return signer.GenerateSignature();
        }
        throw new NotSupportedException($"Cannot sign with a {key.KeyType} key.");
    }

    /// <summary>The a= value for <paramref name="key"/>.</summary>
    public static string Algorithm(DkimSigningKey key) => key.KeyType == "ed25519" ? "ed25519-sha256" : "rsa-sha256";

    /// <summary>A tag cut where folding whitespace is allowed and useful: an h= list at its colons.</summary>
    private static IEnumerable<string> Pieces(string tag)
    {
        if (tag.StartsWith("h=", StringComparison.Ordinal))
        {
            var names = tag.Split(':');
            yield return names[0];
            foreach (var name in names.Skip(1))
                yield return ":" + name;
            yield break;
        }
        yield return tag;
    }
}
