using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Logging;
using Postern.Core.Configuration;
using Postern.Core.Tenants;

namespace Postern.Core.Certificates;

/// <summary>
/// The TLS certificate of each region (subject *.{region}.{product domain}): offered on STARTTLS to
/// Microsoft 365, and presented as client certificate for mail Postern delivers to the Internet (mail handed
/// back to a tenant's Exchange Online carries the tenant's own, <see cref="TenantCertificates"/>). A configured PFX is used
/// when given; otherwise a self-signed one is made once under the data directory.
/// </summary>
public sealed class RegionCertificates
{
    private readonly Dictionary<string, X509Certificate2> _certificates = new(StringComparer.Ordinal);

    public RegionCertificates(PosternOptions options, ILogger<RegionCertificates> logger)
    {
        var directory = Path.Combine(options.DataDir, "certs");
        foreach (var region in Region.All)
        {
            if (options.Certificates.TryGetValue(region, out var configured) && !string.IsNullOrEmpty(configured.Path))
            {
                _certificates[region] = Load(configured.Path, configured.Password, $"Postern:Certificates:{region}:Path");
                continue;
            }
            var path = Path.Combine(directory, $"{region}.pfx");
            if (!File.Exists(path))
            {
                Directory.CreateDirectory(directory);
                var subject = $"*.{region}.{options.ProductDomain}";
                File.WriteAllBytes(path, SelfSignedCertificate.Create(subject));
                if (!OperatingSystem.IsWindows())
                    File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
                logger.LogWarning("Made a self-signed certificate for region {Region} ({Subject}) at {Path}; configure Postern:Certificates:{Region} for production",
                    region, subject, path, region);
            }
            _certificates[region] = Load(path, null, path);
        }
    }

    public X509Certificate2 For(string region) =>
        _certificates.TryGetValue(region, out var certificate) ? certificate : throw new PosternException($"no certificate for region '{region}'");

    private static X509Certificate2 Load(string path, string? password, string setting)
    {
        try
        {
            return X509CertificateLoader.LoadPkcs12FromFile(path, password, X509KeyStorageFlags.Exportable);
        }
        catch (Exception ex) when (ex is CryptographicException or IOException or UnauthorizedAccessException)
        {
            throw new PosternException($"{setting}: cannot load certificate '{path}': {ex.Message}");
        }
    }
}
