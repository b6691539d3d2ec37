using System.Security.Cryptography;
using Org.BouncyCastle.Crypto;
using Org.BouncyCastle.Crypto.Parameters;

namespace Postern.Core.Authentication;

/// <summary>
/// RSA-SHA256 signing for MimeKit's DKIM and ARC signers through .NET's native RSA (OpenSSL) instead
/// of BouncyCastle's managed arithmetic, which costs several milliseconds of CPU per signature — too
/// much on a relay that seals every message twice (ARC-Message-Signature and ARC-Seal).
/// </summary>
internal sealed class NativeRsaSigner(RSA rsa) : ISigner
{
    private readonly IncrementalHash _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);

    public string AlgorithmName => "SHA-256withRSA";

    public void Init(bool forSigning, ICipherParameters parameters)
    {
        if (!forSigning)
            throw new NotSupportedException("This signer only signs.");
    }

    public void Update(byte input) => _hash.AppendData([input]);

    public void BlockUpdate(byte[] input, int inOff, int inLen) => _hash.AppendData(input, inOff, inLen);

    public void BlockUpdate(ReadOnlySpan<byte> input) => _hash.AppendData(input);

    public int GetMaxSignatureSize() => rsa.KeySize / 8;

    public byte[] GenerateSignature() => rsa.SignHash(_hash.GetHashAndReset(), HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);

    public bool VerifySignature(byte[] signature) => throw new NotSupportedException("This signer only signs.");

    public void Reset() => _hash.GetHashAndReset();

    /// <summary>A native RSA key with the same private key as <paramref name="key"/>, or null when it is not an RSA CRT key.</summary>
    public static RSA? CreateKey(AsymmetricKeyParameter key)
    {
        if (key is not RsaPrivateCrtKeyParameters k)
            return null;
        var size = (k.Modulus.BitLength + 7) / 8;
        var half = (size + 1) / 2;
        var rsa = RSA.Create();
        rsa.ImportParameters(new RSAParameters
        {
            Modulus = Pad(k.Modulus, size),
            Exponent = k.PublicExponent.ToByteArrayUnsigned(),
            D = Pad(k.Exponent, size),
            P = Pad(k.P, half),
            Q = Pad(k.Q, half),
            DP = Pad(k.DP, half),
            DQ = Pad(k.DQ, half),
            InverseQ = Pad(k.QInv, half),
        });
        return rsa;
    }

    private static byte[] Pad(Org.BouncyCastle.Math.BigInteger value, int length)
    {
        var bytes = value.ToByteArrayUnsigned();
        if (bytes.Length == length)
            return bytes;
        var padded = new byte[length];
        bytes.CopyTo(padded, length - bytes.Length);
        return padded;
    }
}
