using System.Security.Cryptography;
using System.Text;
using Postern.Core;

namespace Postern.M365.Credentials;

/// <summary>
/// Encrypts secrets at rest with AES-256-GCM under a key kept in its own file (mode 600), so a
/// copy of the tenant files alone does not give the app's private key away. The associated data
/// binds each ciphertext to its tenant and app: a blob moved to another tenant's file does not open.
/// </summary>
public sealed class CredentialProtector
{
    private const byte Version = 1;
    private const int NonceSize = 12;
    private const int TagSize = 16;
    private readonly string _keyPath;

    public CredentialProtector(string keyPath) => _keyPath = keyPath;

    public string KeyPath => _keyPath;

    public byte[] Protect(byte[] plaintext, string context)
    {
        var key = LoadOrCreateKey();
        var output = new byte[1 + NonceSize + TagSize + plaintext.Length];
        output[0] = Version;
        var nonce = output.AsSpan(1, NonceSize);
        RandomNumberGenerator.Fill(nonce);
        using var aes = new AesGcm(key, TagSize);
        aes.Encrypt(nonce, plaintext, output.AsSpan(1 + NonceSize + TagSize), output.AsSpan(1 + NonceSize, TagSize), Encoding.UTF8.GetBytes(context));
        CryptographicOperations.ZeroMemory(key);
        return output;
    }

    public byte[] Unprotect(byte[] blob, string context)
    {
        if (blob.Length < 1 + NonceSize + TagSize || blob[0] != Version)
            throw new PosternException("the stored credentials are damaged; run 'postern m365 connect' again");
        if (!File.Exists(_keyPath))
            throw new PosternException($"the credential key '{_keyPath}' is missing, so the stored credentials cannot be read; run 'postern m365 connect' again");
        var key = LoadOrCreateKey();
        var plaintext = new byte[blob.Length - 1 - NonceSize - TagSize];
        try
        {
            using var aes = new AesGcm(key, TagSize);
            aes.Decrypt(blob.AsSpan(1, NonceSize), blob.AsSpan(1 + NonceSize + TagSize), blob.AsSpan(1 + NonceSize, TagSize), plaintext, Encoding.UTF8.GetBytes(context));
        }
        catch (AuthenticationTagMismatchException)
        {
            throw new PosternException($"the stored credentials do not open with the key '{_keyPath}' (another key, or altered); run 'postern m365 connect' again");
        }
        finally
        {
            CryptographicOperations.ZeroMemory(key);
        }
        return plaintext;
    }

    private byte[] LoadOrCreateKey()
    {
        if (!File.Exists(_keyPath))
        {
            Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(_keyPath))!);
            var fresh = RandomNumberGenerator.GetBytes(32);
            try
            {
                var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
                if (!OperatingSystem.IsWindows())
                    options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
                using (var file = new FileStream(_keyPath, options))
                {
                    file.Write(fresh);
                    file.Flush(flushToDisk: true);
                }
            }
            catch (IOException) when (File.Exists(_keyPath))
            {
                // Another process made it first: use theirs.
            }
            finally
            {
                CryptographicOperations.ZeroMemory(fresh);
            }
        }
        var key = File.ReadAllBytes(_keyPath);
        if (key.Length != 32)
            throw new PosternException($"the credential key '{_keyPath}' is damaged (not 32 bytes)");
        return key;
    }
}
