using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Postern.Core.Certificates;
using Postern.Core.Storage;
using Postern.Core.Tenants;

namespace Postern.Core.Tests.Certificates;

/// <summary>Each tenant's own client certificate: its name, where it is kept, and what replaces it.</summary>
public sealed class TenantCertificatesTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("postern-tenant-certs-").FullName;
    private readonly PosternDatabase _database;
    private readonly Tenant _contoso;
    private readonly Tenant _fabrikam;

    public TenantCertificatesTests()
    {
        _database = new PosternDatabase(_dir);
        var tenants = new TenantStore(_database);
        _contoso = tenants.AddTenant("contoso", Guid.Parse("6f1c2a3b-4d5e-4f60-8a9b-0c1d2e3f4a5b"), "eu", false);
        _fabrikam = tenants.AddTenant("fabrikam", Guid.Parse("0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"), "us", false);
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private TenantCertificates Certificates(string productDomain = "postern.example") => new(new TenantCertificateStore(_database), productDomain);

    [Fact]
    public void Each_tenant_has_a_certificate_of_its_own_named_after_its_id_and_region()
    {
        var certificates = Certificates();

        var contoso = certificates.For(_contoso);
        var fabrikam = certificates.For(_fabrikam);

        Assert.Equal(["6f1c2a3b-4d5e-4f60-8a9b-0c1d2e3f4a5b.eu.postern.example"], TenantCertificates.Names(contoso));
        Assert.Equal(["0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d.us.postern.example"], TenantCertificates.Names(fabrikam));
        Assert.True(contoso.HasPrivateKey);
        Assert.NotEqual(contoso.Thumbprint, fabrikam.Thumbprint);
        // Kept in the database, not on one node's disk: another node (another instance) presents the same one.
        Assert.Equal(contoso.Thumbprint, Certificates().For(_contoso).Thumbprint);
    }

    [Fact]
    public async Task Deliveries_that_need_a_tenants_first_certificate_at_once_make_one_and_all_present_it()
    {
        var certificates = Certificates();

        var thumbprints = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => Task.Run(() => certificates.For(_contoso).Thumbprint)));

        Assert.Single(thumbprints.Distinct());
        Assert.Equal(thumbprints[0], new TenantCertificateStore(_database).Find(_contoso.Id)!.Thumbprint);
    }

    [Fact]
    public void Renewing_replaces_the_certificate_under_the_same_name()
    {
        var certificates = Certificates();
        var before = certificates.For(_contoso);

        var renewed = certificates.RenewSelfSigned(_contoso);

        Assert.Equal(TenantCertificates.Names(before).Single(), renewed.Name);
        Assert.NotEqual(before.Thumbprint, renewed.Thumbprint);
        Assert.Equal(renewed.Thumbprint, certificates.For(_contoso).Thumbprint);
    }

    [Fact]
    public void An_imported_certificate_must_be_for_the_tenants_name_carry_its_key_and_be_in_date()
    {
        var certificates = Certificates();
        var name = certificates.NameFor(_contoso);

        var wrongName = Assert.Throws<PosternException>(() => certificates.Import(_contoso, Pfx(certificates.NameFor(_fabrikam)), null));
        Assert.Contains($"not for tenant 'contoso''s name {name}", wrongName.Message, StringComparison.Ordinal);
        using (var withKey = X509CertificateLoader.LoadPkcs12(Pfx(name), null))
        using (var keyless = X509CertificateLoader.LoadCertificate(withKey.RawData))
        {
            var noKey = Assert.Throws<PosternException>(() => certificates.Import(_contoso, keyless.Export(X509ContentType.Pkcs12), null));
            Assert.Contains("no private key", noKey.Message, StringComparison.Ordinal);
        }
        var expired = Assert.Throws<PosternException>(() => certificates.Import(_contoso, Pfx(name, expired: true), null));
        Assert.Contains("not valid now", expired.Message, StringComparison.Ordinal);

        var imported = certificates.Import(_contoso, Pfx(name, password: "s3cret"), "s3cret");
        Assert.False(imported.SelfSigned);
        Assert.Equal(imported.Thumbprint, certificates.For(_contoso).Thumbprint);
    }

    [Fact]
    public void A_self_signed_certificate_for_another_product_domain_is_made_again_for_the_configured_one()
    {
        Certificates("old.example").For(_contoso);

        var now = Certificates("relay.example.net").Ensure(_contoso);

        Assert.Equal("6f1c2a3b-4d5e-4f60-8a9b-0c1d2e3f4a5b.eu.relay.example.net", now.Name);
    }

    /// <summary>A certificate for <paramref name="name"/> with its key, as a PFX.</summary>
    private static byte[] Pfx(string name, bool expired = false, string? password = null)
    {
        using var key = RSA.Create(2048);
        var request = new CertificateRequest($"CN={name}", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        var names = new SubjectAlternativeNameBuilder();
        names.AddDnsName(name);
        request.CertificateExtensions.Add(names.Build());
        var from = expired ? DateTimeOffset.UtcNow.AddYears(-2) : DateTimeOffset.UtcNow.AddDays(-1);
        using var certificate = request.CreateSelfSigned(from, expired ? DateTimeOffset.UtcNow.AddDays(-1) : DateTimeOffset.UtcNow.AddYears(1));
        return certificate.Export(X509ContentType.Pkcs12, password);
    }
}
