using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using System.Text.Json.Serialization;
using Postern.Core;
using Postern.Core.Tenants;
using Postern.M365.Blueprints;
using Postern.M365.Client;

namespace Postern.M365.Credentials;

/// <summary>What Postern keeps about a tenant's Exchange Online: how to connect, and how it was provisioned.</summary>
public sealed record M365TenantRecord
{
    public required Guid TenantId { get; init; }

    public required string AppId { get; init; }

    public string? Organization { get; init; }

    public string? Endpoint { get; init; }

    public string? Authority { get; init; }

    /// <summary>The Microsoft cloud (commercial, gcc-high, dod, china); null is commercial.</summary>
    public string? Cloud { get; init; }

    /// <summary>A token scope other than the cloud's (--token-scope).</summary>
    public string? TokenScope { get; init; }

    /// <summary>PEM of a server certificate to accept (a test emulator's).</summary>
    public string? TrustedServerCertificate { get; init; }

    public required string CertificateThumbprint { get; init; }

    public required string CertificateSubject { get; init; }

    public required DateTimeOffset CertificateNotAfter { get; init; }

    /// <summary>The app's certificate with its private key (PKCS#12), AES-GCM encrypted, base64.</summary>
    public required string EncryptedCertificate { get; init; }

    /// <summary>The profile last applied (integrated, relay, relay-legacy); later commands default to it.</summary>
    public string? Profile { get; init; }

    public IReadOnlyList<string> ScopeRecipients { get; init; } = [];

    public IReadOnlyList<string> ScopeSenders { get; init; } = [];

    /// <summary>Postern's rules were activated: apply enables them again if someone disabled them.</summary>
    public bool Activated { get; init; }

    public DateTimeOffset? AppliedAt { get; init; }

    /// <summary>What Exchange Online warned about an item the last time apply changed it (item title → warning); verify shows it.</summary>
    public IReadOnlyDictionary<string, string> ExchangeWarnings { get; init; } = new Dictionary<string, string>();

    [JsonIgnore]
    public ProvisioningScope Scope => new(ScopeRecipients, ScopeSenders);
}

/// <summary>
/// One JSON file per tenant under {data}/m365/ (mode 600), beside the key that encrypts the app's
/// private key (credential.key, mode 600). The private key never leaves this store unencrypted
/// except in memory, to sign Entra ID client assertions.
/// </summary>
public sealed class M365Store
{
    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true };
    private readonly string _directory;

    public M365Store(string dataDirectory)
    {
        _directory = Path.Combine(dataDirectory, "m365");
        Protector = new CredentialProtector(Path.Combine(_directory, "credential.key"));
    }

    public CredentialProtector Protector { get; }

    public string PathOf(Guid tenantId) => Path.Combine(_directory, $"{tenantId}.json");

    public M365TenantRecord? Find(Guid tenantId)
    {
        var path = PathOf(tenantId);
        if (!File.Exists(path))
            return null;
        try
        {
            return JsonSerializer.Deserialize<M365TenantRecord>(File.ReadAllText(path), Json);
        }
        catch (JsonException ex)
        {
            throw new PosternException($"'{path}' is damaged: {ex.Message}");
        }
    }

    public M365TenantRecord Get(Tenant tenant) =>
        Find(tenant.Id) ?? throw new PosternException($"tenant '{tenant.Name}' is not connected to Exchange Online: run 'postern m365 connect {tenant.Name} --app-id ID --certificate FILE.pfx'");

    /// <summary>Writes the record atomically (temporary file, then rename), readable by the owner only.</summary>
    public void Save(M365TenantRecord record)
    {
        CreateDirectory();
        var path = PathOf(record.TenantId);
        var temporary = path + ".tmp";
        var options = new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        using (var file = new FileStream(temporary, options))
        {
            JsonSerializer.Serialize(file, record, Json);
            file.Flush(flushToDisk: true);
        }
        File.Move(temporary, path, overwrite: true);
    }

    /// <summary>
    /// Reads the app's PFX and keeps its certificate and private key, encrypted; the connection
    /// settings and the provisioning state of an earlier connect are kept.
    /// </summary>
    public M365TenantRecord Connect(Tenant tenant, string appId, string pfxPath, string? password, string? organization,
        Uri? endpoint, Uri? authority, string? trustedServerCertificatePem, ExoCloud? cloud = null, string? tokenScope = null)
    {
        using var certificate = LoadPfx(pfxPath, password);
        var plain = certificate.Export(X509ContentType.Pkcs12);
        try
        {
            CreateDirectory();
            var previous = Find(tenant.Id);
            return new M365TenantRecord
            {
                TenantId = tenant.Id,
                AppId = appId,
                Organization = organization ?? previous?.Organization,
                Endpoint = endpoint?.ToString() ?? previous?.Endpoint,
                Authority = authority?.ToString() ?? previous?.Authority,
                Cloud = cloud?.Name ?? previous?.Cloud,
                TokenScope = tokenScope ?? previous?.TokenScope,
                TrustedServerCertificate = trustedServerCertificatePem ?? previous?.TrustedServerCertificate,
                CertificateThumbprint = certificate.Thumbprint,
                CertificateSubject = certificate.Subject,
                CertificateNotAfter = new DateTimeOffset(certificate.NotAfter.ToUniversalTime(), TimeSpan.Zero),
                EncryptedCertificate = Convert.ToBase64String(Protector.Protect(plain, Context(tenant.Id, appId))),
                Profile = previous?.Profile,
                ScopeRecipients = previous?.ScopeRecipients ?? [],
                ScopeSenders = previous?.ScopeSenders ?? [],
                Activated = previous?.Activated ?? false,
                AppliedAt = previous?.AppliedAt,
            };
        }
        finally
        {
            CryptographicOperations.ZeroMemory(plain);
        }
    }

    /// <summary>The connection to use, from the record; <paramref name="endpoint"/> and the others override it.</summary>
    public ExoConnection Connection(M365TenantRecord record, Uri? endpoint = null, Uri? authority = null, X509Certificate2? trusted = null)
    {
        var cloud = record.Cloud is { } name ? ExoCloud.Parse(name) : ExoCloud.Commercial;
        var plain = Protector.Unprotect(Convert.FromBase64String(record.EncryptedCertificate), Context(record.TenantId, record.AppId));
        X509Certificate2 certificate;
        try
        {
            certificate = X509CertificateLoader.LoadPkcs12(plain, null, X509KeyStorageFlags.EphemeralKeySet);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(plain);
        }
        return new ExoConnection
        {
            TenantId = record.TenantId,
            Organization = record.Organization,
            AppId = record.AppId,
            Certificate = certificate,
            Cloud = cloud,
            Endpoint = endpoint ?? (record.Endpoint is { } e ? new Uri(e) : cloud.Endpoint),
            Authority = authority ?? (record.Authority is { } a ? new Uri(a) : cloud.Authority),
            TokenScope = record.TokenScope ?? cloud.TokenScope,
            TrustedServerCertificate = trusted ?? (record.TrustedServerCertificate is { } pem ? X509Certificate2.CreateFromPem(pem) : null),
        };
    }

    /// <summary>Loads a PFX that must hold an RSA private key (Entra client assertions are RSA-signed).</summary>
    public static X509Certificate2 LoadPfx(string path, string? password)
    {
        X509Certificate2 certificate;
        try
        {
            certificate = X509CertificateLoader.LoadPkcs12FromFile(path, password, X509KeyStorageFlags.Exportable | X509KeyStorageFlags.EphemeralKeySet);
        }
        catch (CryptographicException ex)
        {
            throw new PosternException($"--certificate '{path}' cannot be read as a PFX{(password is null ? " without a password (give --certificate-password-file)" : " with the given password")}: {ex.Message}");
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new PosternException($"--certificate '{path}' cannot be read: {ex.Message}");
        }
        using var rsa = certificate.GetRSAPrivateKey();
        if (rsa is null)
        {
            certificate.Dispose();
            throw new PosternException($"--certificate '{path}' has no RSA private key; the app's certificate credential needs one");
        }
        return certificate;
    }

    private static string Context(Guid tenantId, string appId) => $"postern-m365-certificate:{tenantId}:{appId}";

    private void CreateDirectory()
    {
        if (Directory.Exists(_directory))
            return;
        if (OperatingSystem.IsWindows())
            Directory.CreateDirectory(_directory);
        else
            Directory.CreateDirectory(_directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
    }
}
