using System.Security.Cryptography;
using Org.BouncyCastle.Asn1;
using Org.BouncyCastle.Asn1.X509;
using Org.BouncyCastle.Crypto;
using Org.BouncyCastle.Crypto.Parameters;
using Org.BouncyCastle.Security;

namespace Postern.Core.Authentication;

/// <summary>
/// A DKIM key record ("v=DKIM1; k=rsa; p=…", RFC 6376 §3.6.1), parsed strictly: MimeKit's own parser
/// accepts records a verifier must refuse (a bad version, a service type other than email, a revoked key),
/// so Postern parses here and hands MimeKit only keys that may be used for mail.
/// </summary>
public sealed class DkimPublicKeyRecord
{
    private RSA? _nativeRsa;

    private DkimPublicKeyRecord(string keyType, AsymmetricKeyParameter key, IReadOnlyList<string>? hashAlgorithms, bool testing, bool strictIdentity)
    {
        KeyType = keyType;
        Key = key;
        HashAlgorithms = hashAlgorithms;
        Testing = testing;
        StrictIdentity = strictIdentity;
    }

    /// <summary>"rsa" or "ed25519".</summary>
    public string KeyType { get; }

    public AsymmetricKeyParameter Key { get; }

    /// <summary>The h= list of hash algorithms the key may be used with; null when any is allowed.</summary>
    public IReadOnlyList<string>? HashAlgorithms { get; }

    /// <summary>t=y: the domain is testing DKIM, failures should not be held against it.</summary>
    public bool Testing { get; }

    /// <summary>t=s: the i= domain of signatures must equal d= exactly, no subdomains.</summary>
    public bool StrictIdentity { get; }

    /// <summary>
    /// The RSA key as .NET's native RSA (OpenSSL), made once per record: it verifies in tens of microseconds,
    /// BouncyCastle's managed arithmetic in about half a millisecond. Only for k=rsa.
    /// </summary>
    internal RSA NativeRsa => LazyInitializer.EnsureInitialized(ref _nativeRsa, () =>
    {
        var rsa = (RsaKeyParameters)Key;
        var native = RSA.Create();
        native.ImportParameters(new RSAParameters { Modulus = rsa.Modulus.ToByteArrayUnsigned(), Exponent = rsa.Exponent.ToByteArrayUnsigned() });
        return native;
    });

    /// <summary>RSA modulus size in bits, 256 for Ed25519.</summary>
    public int KeyBits => Key is RsaKeyParameters rsa ? rsa.Modulus.BitLength : 256;

    /// <summary>Parses a key record; throws <see cref="DkimKeyException"/> (permanent) saying what is wrong with it.</summary>
    public static DkimPublicKeyRecord Parse(string text)
    {
        var tags = DkimTagList.TryParse(text) ?? throw new DkimKeyException("the key record is not a valid tag list", temporary: false);
        if (tags.TryGetValue("v", out var version))
        {
            // v= must be the first tag and exactly DKIM1 (§3.6.1).
            var firstTag = text.Split(';', 2)[0].Split('=', 2)[0].Trim();
            if (version != "DKIM1" || firstTag != "v")
                throw new DkimKeyException($"unsupported key record version 'v={version}' (it must be the first tag and DKIM1)", temporary: false);
        }
        var keyType = tags.GetValueOrDefault("k", "rsa");
        if (keyType is not ("rsa" or "ed25519"))
            throw new DkimKeyException($"unknown key type 'k={keyType}'", temporary: false);
        if (tags.TryGetValue("s", out var services)
            && !services.Split(':').Select(s => s.Trim()).Any(s => s is "*" or "email"))
            throw new DkimKeyException($"the key is not for email (s={services})", temporary: false);
        if (!tags.TryGetValue("p", out var p))
            throw new DkimKeyException("the key record has no p= tag", temporary: false);
        p = DkimTagList.WithoutWhitespace(p);
        if (p.Length == 0)
            throw new DkimKeyException("the key has been revoked (empty p=)", temporary: false);

        byte[] data;
        try
        {
            data = Convert.FromBase64String(p);
        }
        catch (FormatException)
        {
            throw new DkimKeyException("p= is not base64", temporary: false);
        }

        var key = keyType == "ed25519" ? ReadEd25519(data) : ReadRsa(data);
        var hashes = tags.TryGetValue("h", out var h) ? h.Split(':').Select(x => x.Trim()).ToArray() : null;
        var flags = tags.TryGetValue("t", out var t) ? t.Split(':').Select(x => x.Trim()).ToArray() : [];
        return new DkimPublicKeyRecord(keyType, key, hashes, flags.Contains("y"), flags.Contains("s"));
    }

    private static AsymmetricKeyParameter ReadEd25519(byte[] data)
    {
        if (data.Length != Ed25519PublicKeyParameters.KeySize)
            throw new DkimKeyException($"an Ed25519 key is {Ed25519PublicKeyParameters.KeySize} bytes, not {data.Length}", temporary: false);
        return new Ed25519PublicKeyParameters(data, 0);
    }

    private static AsymmetricKeyParameter ReadRsa(byte[] data)
    {
        try
        {
            var asn1 = Asn1Object.FromByteArray(data);
            if (asn1 is Asn1Sequence { Count: 2 } sequence && sequence[0] is DerInteger)
            {
                // Some signers publish the bare PKCS#1 RSAPublicKey instead of SubjectPublicKeyInfo.
                var pkcs1 = RsaPublicKeyStructure.GetInstance(sequence);
                return new RsaKeyParameters(false, pkcs1.Modulus, pkcs1.PublicExponent);
            }
            var key = PublicKeyFactory.CreateKey(SubjectPublicKeyInfo.GetInstance(asn1));
            return key as RsaKeyParameters ?? throw new DkimKeyException("k=rsa but p= holds another kind of key", temporary: false);
        }
        catch (DkimKeyException)
        {
            throw;
        }
        catch (Exception ex) when (ex is ArgumentException or InvalidCastException or IOException or InvalidOperationException
            or Asn1Exception or SecurityUtilityException)
        {
            throw new DkimKeyException("p= is not a valid RSA public key", temporary: false);
        }
    }
}

/// <summary>A DKIM or ARC public key could not be had: <see cref="Temporary"/> when DNS failed, permanent when the record is missing or broken.</summary>
public sealed class DkimKeyException(string message, bool temporary) : Exception(message)
{
    public bool Temporary { get; } = temporary;
}
