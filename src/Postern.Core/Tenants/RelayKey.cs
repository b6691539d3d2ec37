using System.Security.Cryptography;
using System.Text;

namespace Postern.Core.Tenants;

/// <summary>
/// The per-tenant secret the Exchange Online rules put in X-Postern-Key. Shown once when made;
/// only its SHA-256 is stored (the key has 256 random bits, so a plain hash cannot be guessed back).
/// </summary>
public static class RelayKey
{
    private const string Prefix = "pk_";

    public static string Generate() =>
        Prefix + Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    public static byte[] Hash(string key) => SHA256.HashData(Encoding.UTF8.GetBytes(key.Trim()));

    /// <summary>Constant-time comparison of a presented key's hash with a stored hash.</summary>
    public static bool Matches(byte[] presentedHash, byte[]? storedHash) =>
        storedHash is not null && CryptographicOperations.FixedTimeEquals(presentedHash, storedHash);
}

/// <summary>The secret loop token: 128 random bits as hex.</summary>
public static class LoopToken
{
    public static string Generate() => Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));
}
