using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Postern.Smtp.Tests.Infrastructure;

/// <summary>A self-signed server certificate made once per test run.</summary>
internal static class TestCertificate
{
    private static readonly Lazy<X509Certificate2> Server = new(() => Create("CN=mx.test"));
    private static readonly Lazy<X509Certificate2> Client = new(() => Create("CN=client.test"));

    public static X509Certificate2 Instance => Server.Value;

    public static X509Certificate2 ClientInstance => Client.Value;

    private static X509Certificate2 Create(string subject)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest(subject, key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, false));
        var now = DateTimeOffset.UtcNow;
        using var cert = request.CreateSelfSigned(now.AddDays(-1), now.AddDays(7));
        // Round-trip through PKCS#12 so the private key is usable on every platform.
        return X509CertificateLoader.LoadPkcs12(cert.Export(X509ContentType.Pkcs12), null);
    }
}
