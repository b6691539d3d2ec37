using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Logging;
using Postern.Core.Storage;
using Postern.Core.Tenants;

namespace Postern.Core.Certificates;

/// <summary>
/// Each tenant's own TLS client certificate, presented when Postern hands that tenant's mail back to Exchange
/// Online. Its name is {tenant id}.{region}.{product domain}, unique to the tenant and stable: the tenant's inbound
/// connector expects exactly that name, and Exchange Online attributes mail arriving on an OnPremises connector by
/// the certificate's domain first (then MAIL FROM, then RCPT TO; MC1226222). One certificate shared by every
/// tenant lets mail from one customer to another come back attributed to the sender's tenant. The tenant id, not
/// Postern's tenant name, makes the name: it never changes and never collides (SEPPmail365cloud names its
/// certificates the same way since 1.3.0). Embedded default: self-signed, made when the tenant is added (or first
/// needed); production: an operator-provided one, imported under the same name.
/// </summary>
public sealed class TenantCertificates(TenantCertificateStore store, string productDomain, ILogger<TenantCertificates>? logger = null)
{
    private readonly ConcurrentDictionary<Guid, (string Thumbprint, X509Certificate2 Certificate)> _loaded = new();
    private readonly Lock _making = new();

    /// <summary>The name the tenant's certificate carries (CN and DNS subject alternative name) and its connector expects.</summary>
    public static string NameFor(Tenant tenant, string productDomain) =>
        $"{tenant.Id:D}.{tenant.Region}.{productDomain}".ToLowerInvariant();

    public string NameFor(Tenant tenant) => NameFor(tenant, productDomain);

    /// <summary>The tenant's certificate with its private key, made (self-signed) and stored when it has none.</summary>
    public X509Certificate2 For(Tenant tenant)
    {
        if (_loaded.TryGetValue(tenant.Id, out var cached))
            return cached.Certificate;
        // One at a time: two deliveries of a tenant without a certificate must not each make and store one.
        StoredTenantCertificate stored;
        lock (_making)
        {
            if (_loaded.TryGetValue(tenant.Id, out cached))
                return cached.Certificate;
            stored = Ensure(tenant);
        }
        var certificate = X509CertificateLoader.LoadPkcs12(stored.Pfx, null, X509KeyStorageFlags.Exportable);
        return _loaded.GetOrAdd(tenant.Id, (stored.Thumbprint, certificate)).Certificate;
    }

    /// <summary>Forgets what was loaded (after a configuration reload: a certificate may have been replaced).</summary>
    public void Forget() => _loaded.Clear();

    /// <summary>
    /// The stored certificate; a self-signed one is made first when there is none, or when the one stored is a
    /// self-signed one for another name (the product domain changed). An imported one for another name is kept,
    /// with a warning: only its owner can have it reissued.
    /// </summary>
    public StoredTenantCertificate Ensure(Tenant tenant)
    {
        var stored = store.Find(tenant.Id);
        if (stored is null || (stored.SelfSigned && !stored.Name.Equals(NameFor(tenant), StringComparison.OrdinalIgnoreCase)))
            return RenewSelfSigned(tenant);
        if (!stored.Name.Equals(NameFor(tenant), StringComparison.OrdinalIgnoreCase))
            logger?.LogWarning("The certificate of tenant {Tenant} is for {Stored}, not for {Expected}: its inbound connector expects the latter; import one issued for it",
                tenant.Name, stored.Name, NameFor(tenant));
        return stored;
    }

    /// <summary>A new self-signed certificate under the tenant's name, replacing the one it had.</summary>
    public StoredTenantCertificate RenewSelfSigned(Tenant tenant)
    {
        var name = NameFor(tenant);
        var pfx = SelfSignedCertificate.Create(name);
        using var certificate = X509CertificateLoader.LoadPkcs12(pfx, null);
        var stored = new StoredTenantCertificate(tenant.Id, name, pfx, certificate.Thumbprint,
            new DateTimeOffset(certificate.NotAfter.ToUniversalTime(), TimeSpan.Zero), SelfSigned: true, DateTimeOffset.UtcNow);
        store.Save(stored);
        _loaded.TryRemove(tenant.Id, out _);
        logger?.LogInformation("Made a self-signed certificate for tenant {Tenant} ({Name})", tenant.Name, name);
        return stored;
    }

    /// <summary>
    /// Puts an operator's certificate (PFX with its private key) in place of the tenant's, after checking it is for
    /// the tenant's name, has its key and is in date; refused with one line saying what is wrong otherwise.
    /// </summary>
    public StoredTenantCertificate Import(Tenant tenant, byte[] pfx, string? password)
    {
        var name = NameFor(tenant);
        X509Certificate2 certificate;
        try
        {
            certificate = X509CertificateLoader.LoadPkcs12(pfx, password, X509KeyStorageFlags.Exportable);
        }
        catch (CryptographicException ex)
        {
            throw new PosternException($"cannot read the certificate: {ex.Message}");
        }
        using (certificate)
        {
            if (!certificate.HasPrivateKey)
                throw new PosternException("the certificate has no private key: export it with its key (PFX)");
            if (!Names(certificate).Contains(name, StringComparer.OrdinalIgnoreCase))
                throw new PosternException($"the certificate is for {string.Join(", ", Names(certificate).DefaultIfEmpty("no name"))}, not for tenant '{tenant.Name}''s name {name} (its inbound connector expects exactly that name)");
            if (certificate.NotAfter.ToUniversalTime() <= DateTime.UtcNow || certificate.NotBefore.ToUniversalTime() > DateTime.UtcNow.AddMinutes(5))
                throw new PosternException($"the certificate is not valid now (from {certificate.NotBefore:yyyy-MM-dd} to {certificate.NotAfter:yyyy-MM-dd})");
            var stored = new StoredTenantCertificate(tenant.Id, name, certificate.Export(X509ContentType.Pkcs12), certificate.Thumbprint,
                new DateTimeOffset(certificate.NotAfter.ToUniversalTime(), TimeSpan.Zero), SelfSigned: false, DateTimeOffset.UtcNow);
            store.Save(stored);
            _loaded.TryRemove(tenant.Id, out _);
            return stored;
        }
    }

    /// <summary>The DNS names a certificate is for: its subject alternative names, else its common name.</summary>
    public static IReadOnlyList<string> Names(X509Certificate2 certificate)
    {
        var names = certificate.Extensions.OfType<X509SubjectAlternativeNameExtension>().SelectMany(e => e.EnumerateDnsNames()).ToList();
        if (names.Count == 0 && certificate.GetNameInfo(X509NameType.SimpleName, false) is { Length: > 0 } cn)
            names.Add(cn);
        return names;
    }
}
