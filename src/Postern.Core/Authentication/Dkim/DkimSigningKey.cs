using System.Security.Cryptography;
using MimeKit.Cryptography;
using Org.BouncyCastle.Crypto;
using Org.BouncyCastle.Crypto.Generators;
using Org.BouncyCastle.Crypto.Parameters;
using Org.BouncyCastle.OpenSsl;
using Org.BouncyCastle.Pkcs;
using Org.BouncyCastle.Security;
using Org.BouncyCastle.X509;

namespace Postern.Core.Authentication;

/// <summary>
/// A private key Postern signs with (DKIM and ARC), and the public half it publishes in DNS. Stored as
/// PKCS#8 PEM; RSA PKCS#1 PEM and raw Ed25519 seeds (dkimpy's format) are read too.
/// </summary>
public sealed class DkimSigningKey
{
    private DkimSigningKey(AsymmetricKeyParameter privateKey, AsymmetricKeyParameter publicKey)
    {
        PrivateKey = privateKey;
        PublicKey = publicKey;
    }

    public AsymmetricKeyParameter PrivateKey { get; }

    public AsymmetricKeyParameter PublicKey { get; }

    private RSA? _native;

    /// <summary>The same key as native .NET RSA, made once (signing through it is many times faster); null for Ed25519.</summary>
    internal RSA? NativeRsa => _native ??= NativeRsaSigner.CreateKey(PrivateKey);

    /// <summary>b= over <paramref name="sha256"/>, the SHA-256 of the canonicalized header data: RSASSA-PKCS1-v1_5 natively (OpenSSL), or Ed25519 (RFC 8463).</summary>
    internal byte[] SignSha256(byte[] sha256)
    {
        if (PrivateKey is Ed25519PrivateKeyParameters ed25519)
        {
            var signer = new Org.BouncyCastle.Crypto.Signers.Ed25519Signer();
            signer.Init(true, ed25519);
            signer.BlockUpdate(sha256, 0, sha256.Length);
            return signer.GenerateSignature();
        }
        return NativeRsa!.SignHash(sha256, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
    }

    /// <summary>rsa-sha256 for RSA keys, ed25519-sha256 for Ed25519 keys.</summary>
    public DkimSignatureAlgorithm Algorithm => PrivateKey is Ed25519PrivateKeyParameters ? DkimSignatureAlgorithm.Ed25519Sha256 : DkimSignatureAlgorithm.RsaSha256;

    /// <summary>The k= value: "rsa" or "ed25519".</summary>
    public string KeyType => PrivateKey is Ed25519PrivateKeyParameters ? "ed25519" : "rsa";

    /// <summary>RSA modulus size, or 256 for Ed25519.</summary>
    public int KeyBits => PublicKey is RsaKeyParameters rsa ? rsa.Modulus.BitLength : 256;

    /// <summary>The p= value: base64 SubjectPublicKeyInfo for RSA, the raw 32-byte key for Ed25519 (RFC 8463).</summary>
    public string PublicKeyBase64 => PublicKey is Ed25519PublicKeyParameters ed
        ? Convert.ToBase64String(ed.GetEncoded())
        : Convert.ToBase64String(SubjectPublicKeyInfoFactory.CreateSubjectPublicKeyInfo(PublicKey).GetEncoded());

    /// <summary>A new RSA key; 2048 bits is what Microsoft 365 and most receivers expect today.</summary>
    public static DkimSigningKey GenerateRsa(int bits = 2048)
    {
        if (bits < DkimChecker.MinimumRsaKeyBits)
            throw new ArgumentOutOfRangeException(nameof(bits), bits, $"DKIM keys must have at least {DkimChecker.MinimumRsaKeyBits} bits (RFC 8301).");
        using var rsa = RSA.Create(bits);
        return FromPem(rsa.ExportPkcs8PrivateKeyPem());
    }

    /// <summary>A new Ed25519 key (RFC 8463). Publish it beside an RSA key: many receivers cannot verify Ed25519 yet.</summary>
    public static DkimSigningKey GenerateEd25519()
    {
        var generator = new Ed25519KeyPairGenerator();
        generator.Init(new Ed25519KeyGenerationParameters(new SecureRandom()));
        var pair = generator.GenerateKeyPair();
        return new DkimSigningKey(pair.Private, pair.Public);
    }

    /// <summary>Reads "PRIVATE KEY" (PKCS#8, RSA or Ed25519) or "RSA PRIVATE KEY" (PKCS#1) PEM.</summary>
    public static DkimSigningKey FromPem(string pem)
    {
        object? read;
        try
        {
            using var reader = new PemReader(new StringReader(pem));
            read = reader.ReadObject();
        }
        catch (Exception ex) when (ex is IOException or PemException or ArgumentException or InvalidCastException)
        {
            throw new PosternException($"The DKIM key is not a readable PEM private key ({ex.Message}).");
        }
        var privateKey = read switch
        {
            AsymmetricCipherKeyPair pair => pair.Private,
            AsymmetricKeyParameter { IsPrivate: true } key => key,
            _ => throw new PosternException("The DKIM key PEM does not hold a private key; expected 'PRIVATE KEY' or 'RSA PRIVATE KEY'."),
        };
        return FromPrivateKey(privateKey);
    }

    /// <summary>An Ed25519 key from its 32-byte seed in base64, the form dkimpy and RFC 8032 test vectors use.</summary>
    public static DkimSigningKey FromEd25519Seed(string base64Seed)
    {
        var seed = Convert.FromBase64String(base64Seed.Trim());
        return FromPrivateKey(new Ed25519PrivateKeyParameters(seed, 0));
    }

    public static DkimSigningKey FromPrivateKey(AsymmetricKeyParameter privateKey) => privateKey switch
    {
        RsaPrivateCrtKeyParameters rsa => new DkimSigningKey(rsa, new RsaKeyParameters(false, rsa.Modulus, rsa.PublicExponent)),
        Ed25519PrivateKeyParameters ed => new DkimSigningKey(ed, ed.GeneratePublicKey()),
        _ => throw new PosternException($"DKIM keys must be RSA (with CRT parameters) or Ed25519, not {privateKey.GetType().Name}."),
    };

    /// <summary>The private key as PKCS#8 PEM, for storage.</summary>
    public string ExportPem()
    {
        var info = PrivateKeyInfoFactory.CreatePrivateKeyInfo(PrivateKey);
        return PemEncoding.WriteString("PRIVATE KEY", info.GetEncoded());
    }

    /// <summary>The TXT record that publishes this key under <paramref name="selector"/>._domainkey.<paramref name="domain"/>.</summary>
    public DkimDnsRecord DnsRecord(string domain, string selector) => new(domain, selector, KeyType, PublicKeyBase64);
}
