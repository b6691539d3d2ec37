using System.Globalization;
using System.Text;
using MimeKit;
using MimeKit.Cryptography;
using Postern.Core.Spool;

namespace Postern.Core.Authentication;

/// <summary>
/// Writes one ARC set (RFC 8617 §4.1) over a message's bytes as Postern sends them: the ARC-Authentication-Results,
/// the ARC-Message-Signature (relaxed/relaxed, its body hash from the stored body) and the ARC-Seal over every set
/// up to it. Canonicalization and hashing are the ones verification uses (<see cref="DkimMessageHashes"/>: native
/// SHA-256, held to MimeKit's canonicalization by the differential tests) and the signatures are native RSA, so a
/// seal costs its two RSA signatures and one pass over the body; MimeKit's signer hashed the body with managed
/// SHA-256 through two stream filters, over a <see cref="MimeMessage"/> made for it.
/// </summary>
internal static class ArcSetSigner
{
    private const int LineLength = 76;

    /// <summary>The three fields, each "Name: value" with CRLF, in the order they go on top of the message: ARC-Seal, ARC-Message-Signature, ARC-Authentication-Results.</summary>
    public static IReadOnlyList<byte[]> Sign(RawMessage message, int instance, string cv, AuthenticationResults results, DkimSigningKey key,
        string domain, string selector, IReadOnlyList<string> signedFields, long timestamp)
    {
        var algorithm = key.Algorithm == MimeKit.Cryptography.DkimSignatureAlgorithm.Ed25519Sha256 ? "ed25519-sha256" : "rsa-sha256";
        var i = instance.ToString(CultureInfo.InvariantCulture);
        var t = timestamp.ToString(CultureInfo.InvariantCulture);

        // MimeKit formats (and folds) the results as it would for its own signer.
        results.Instance = instance;
        var aar = SigningView.ToBytes(new Header(HeaderId.ArcAuthenticationResults, results.ToString()));

        string bodyHash;
        using (var body = message.OpenBody())
            bodyHash = DkimMessageHashes.RelaxedBodyHash(body);
        var ams = new TagWriter("ARC-Message-Signature");
        ams.Tags(("i", i), ("a", algorithm), ("c", "relaxed/relaxed"), ("d", domain), ("s", selector), ("t", t));
        ams.List("h", signedFields);
        ams.Tag("bh", bodyHash);
        var amsField = ams.Signed(key, SignedFields(message, signedFields));

        var seal = new TagWriter("ARC-Seal");
        seal.Tags(("i", i), ("a", algorithm), ("t", t), ("cv", cv), ("d", domain), ("s", selector));
        var chain = EarlierSets(message, instance).Append(("ARC-Authentication-Results", ValueOf(aar))).Append(("ARC-Message-Signature", ValueOf(amsField)));
        var sealField = seal.Signed(key, chain);
        return [sealField, amsField, aar];
    }

    /// <summary>The fields h= names, each occurrence from the bottom up (RFC 6376 §5.4.2); a name with no occurrence left signs nothing.</summary>
    private static IEnumerable<(string, byte[])> SignedFields(RawMessage message, IReadOnlyList<string> names)
    {
        var used = new Dictionary<string, int>(StringComparer.OrdinalIgnoreCase);
        foreach (var name in names)
        {
            used.TryGetValue(name, out var seen);
            used[name] = seen + 1;
            var occurrence = message.IndexesOf(name).Reverse().Skip(seen).Select(index => (int?)index).FirstOrDefault();
            if (occurrence is { } index)
                yield return (message.NameOf(index)!, ValueOf(message.Fields[index]));
        }
    }

    /// <summary>Every earlier set's fields in the order the seal covers them: by instance, then AAR, AMS, AS (RFC 8617 §5.1.1).</summary>
    private static IEnumerable<(string, byte[])> EarlierSets(RawMessage message, int instance)
    {
        string[] names = ["ARC-Authentication-Results", "ARC-Message-Signature", "ARC-Seal"];
        for (var n = 1; n < instance; n++)
        {
            foreach (var name in names)
            {
                var index = message.IndexesOf(name).Select(x => (int?)x).FirstOrDefault(x => InstanceOf(message.ValueOf(x!.Value)) == n);
                if (index is { } found)
                    yield return (message.NameOf(found)!, ValueOf(message.Fields[found]));
            }
        }
    }

    /// <summary>i= of an ARC field: the AAR's leads its value, the others' is one tag among theirs.</summary>
    private static int? InstanceOf(string value)
    {
        var tags = DkimTagList.TryParse(value);
        var i = tags?.GetValueOrDefault("i") ?? value.Split(';', 2)[0].Split('=', 2) switch
        {
            [var tag, var number] when tag.Trim() == "i" => number,
            _ => null,
        };
        return int.TryParse(i?.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var n) ? n : null;
    }

    /// <summary>The field's bytes after its colon.</summary>
    private static byte[] ValueOf(byte[] field) => field[(Array.IndexOf(field, (byte)':') + 1)..];

    /// <summary>A tag list folded at <see cref="LineLength"/>, ending with an empty b= that <see cref="Signed"/> fills in.</summary>
    private sealed class TagWriter(string fieldName)
    {
        private readonly StringBuilder _value = new();
        private int _line = fieldName.Length + 1;

        public void Tag(string name, string value) => Add($"{name}={value};");

        public void Tags(params (string Name, string Value)[] tags)
        {
            foreach (var (name, value) in tags)
                Tag(name, value);
        }

        /// <summary>A colon-separated list (h=), folded between its items.</summary>
        public void List(string name, IEnumerable<string> items)
        {
            Break();
            _value.Append(name).Append('=');
            _line += name.Length + 1;
            var first = true;
            foreach (var item in items)
            {
                var piece = (first ? "" : ":") + item;
                if (!first && _line + piece.Length > LineLength)
                    Break();
                _value.Append(piece);
                _line += piece.Length;
                first = false;
            }
            _value.Append(';');
        }

        /// <summary>The whole field: signs its canonical form (after <paramref name="covered"/>) with b= empty, then writes b=.</summary>
        public byte[] Signed(DkimSigningKey key, IEnumerable<(string, byte[])> covered)
        {
            Break();
            _value.Append("b=");
            var unsigned = Encoding.UTF8.GetBytes(_value.ToString());
            var signature = Convert.ToBase64String(key.SignSha256(DkimMessageHashes.RelaxedHeaderHash(covered, fieldName, unsigned)));
            for (var at = 0; at < signature.Length; at += LineLength - 8)
            {
                if (at > 0)
                    _value.Append("\r\n\t");
                _value.Append(signature.AsSpan(at, Math.Min(LineLength - 8, signature.Length - at)));
            }
            return Encoding.UTF8.GetBytes($"{fieldName}:{_value}\r\n");
        }

        private void Add(string tag)
        {
            if (_line + tag.Length + 1 > LineLength)
                Break();
            else
            {
                _value.Append(' ');
                _line++;
            }
            _value.Append(tag);
            _line += tag.Length;
        }

        private void Break()
        {
            _value.Append("\r\n\t");
            _line = 8;
        }
    }
}
