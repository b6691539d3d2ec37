using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Postern.EndToEnd.Infrastructure;

/// <summary>A self-signed certificate written as PEM files, for the TLS peers the tests start.</summary>
public sealed class TestCertificate
{
    private TestCertificate(string keyPath, string certificatePath, string subject)
    {
        KeyPath = keyPath;
        CertificatePath = certificatePath;
        Subject = subject;
    }

    public string KeyPath { get; }
    public string CertificatePath { get; }
    public string Subject { get; }

    /// <summary>Writes NAME.key (mode 600) and NAME.crt into <paramref name="directory"/>.</summary>
    public static TestCertificate Create(string directory, string name, string commonName, string? organization = null)
    {
        using var rsa = RSA.Create(2048);
        var subject = organization is null ? $"CN={commonName}" : $"CN={commonName}, O={organization}";
        var request = new CertificateRequest(subject, rsa, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        var san = new SubjectAlternativeNameBuilder();
        san.AddDnsName(commonName);
        san.AddIpAddress(System.Net.IPAddress.Loopback);
        request.CertificateExtensions.Add(san.Build());
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension(
            [new Oid("1.3.6.1.5.5.7.3.1"), new Oid("1.3.6.1.5.5.7.3.2")], critical: false)); // serverAuth, clientAuth
        request.CertificateExtensions.Add(new X509KeyUsageExtension(
            X509KeyUsageFlags.DigitalSignature | X509KeyUsageFlags.KeyEncipherment, critical: false));
        using var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(30));

        var keyPath = Path.Combine(directory, name + ".key");
        var certificatePath = Path.Combine(directory, name + ".crt");
        File.WriteAllText(keyPath, rsa.ExportPkcs8PrivateKeyPem() + "\n");
        File.SetUnixFileMode(keyPath, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        File.WriteAllText(certificatePath, certificate.ExportCertificatePem() + "\n");
        return new TestCertificate(keyPath, certificatePath, subject);
    }
}
