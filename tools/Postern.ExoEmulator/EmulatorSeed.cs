using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Postern.ExoEmulator;

/// <summary>
/// A JSON description of tenants to start with: their registered apps, accepted domains and the
/// rules, connectors and settings they already have. Items are written with the parameters of
/// the cmdlet that makes them (New-TransportRule, New-InboundConnector, …) and created through
/// the same cmdlets, so a seed is checked like any call.
/// </summary>
public sealed class EmulatorSeed
{
    private static readonly JsonSerializerOptions Options = new()
    {
        PropertyNameCaseInsensitive = true,
        ReadCommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
    };

    public List<TenantSeed> Tenants { get; set; } = [];

    public static EmulatorSeed Parse(string json) =>
        JsonSerializer.Deserialize<EmulatorSeed>(json, Options) ?? new EmulatorSeed();

    public static EmulatorSeed Load(string path) => Parse(File.ReadAllText(path));

    /// <summary>Creates the tenants; <paramref name="baseDirectory"/> resolves relative certificate files.</summary>
    public void ApplyTo(ExoEmulator emulator, string? baseDirectory = null)
    {
        foreach (var seed in Tenants)
        {
            if (seed.TenantId == Guid.Empty || string.IsNullOrWhiteSpace(seed.Organization))
                throw new InvalidDataException("seed: every tenant needs a tenantId (GUID) and an organization (x.onmicrosoft.com)");
            var tenant = emulator.AddTenant(seed.TenantId, seed.Organization);
            tenant.Resource = ExoEmulator.CloudResources.TryGetValue(seed.Cloud, out var resource)
                ? resource
                : throw new InvalidDataException($"seed: tenant {seed.Organization}: cloud '{seed.Cloud}' is not one of {string.Join(", ", ExoEmulator.CloudResources.Keys)}");
            foreach (var app in seed.Apps)
                ExoEmulator.RegisterApp(tenant, app.AppId, app.LoadCertificate(baseDirectory));
            foreach (var domain in seed.AcceptedDomains)
                tenant.AddAcceptedDomain(domain.DomainName, domain.DomainType);
            var where = $"seed: tenant {seed.Organization}";
            Run(tenant, $"{where}: outbound connector", "New-OutboundConnector", seed.OutboundConnectors);
            Run(tenant, $"{where}: inbound connector", "New-InboundConnector", seed.InboundConnectors);
            Run(tenant, $"{where}: transport rule", "New-TransportRule", seed.TransportRules);
            if (seed.ArcTrustedSealers.Count > 0)
                Run(tenant, $"{where}: ARC sealers", "Set-ArcConfig", [new JsonObject { ["Identity"] = "Default", ["ArcTrustedSealers"] = Array(seed.ArcTrustedSealers) }]);
            if (seed.IpAllowList.Count > 0)
                Run(tenant, $"{where}: IP allow list", "Set-HostedConnectionFilterPolicy", [new JsonObject { ["Identity"] = "Default", ["IPAllowList"] = Array(seed.IpAllowList) }]);
            Run(tenant, $"{where}: spoof item", "New-TenantAllowBlockListSpoofItems",
                seed.SpoofItems.Select(i => { i.TryAdd("Identity", "Default"); return i; }).ToList());
            if (seed.RemoteDomain is { } remote)
            {
                remote.TryAdd("Identity", "Default");
                Run(tenant, $"{where}: remote domain", "Set-RemoteDomain", [remote]);
            }
            // After the seed's own connectors: those were made before the tenant's offering forbade them.
            tenant.OnPremisesInboundProhibited = seed.OnPremisesInboundConnectorsProhibited;
        }
    }

    private static void Run(EmulatedTenant tenant, string what, string cmdlet, List<JsonObject> items)
    {
        for (var i = 0; i < items.Count; i++)
        {
            try
            {
                tenant.Invoke(cmdlet, items[i]);
            }
            catch (ExoError error)
            {
                throw new InvalidDataException($"{what} #{i + 1} ({items[i]["Name"] ?? items[i]["Identity"]}): {error.Message}");
            }
        }
    }

    private static JsonArray Array(IEnumerable<string> values) => new([.. values.Select(v => (JsonNode)JsonValue.Create(v))]);
}

public sealed class TenantSeed
{
    public Guid TenantId { get; set; }

    /// <summary>The initial domain, e.g. contoso.onmicrosoft.com.</summary>
    public string Organization { get; set; } = "";

    public List<AppSeed> Apps { get; set; } = [];

    /// <summary>OnPremises inbound connectors are created disabled and cannot be enabled (<see cref="EmulatedTenant.OnPremisesInboundProhibited"/>).</summary>
    public bool OnPremisesInboundConnectorsProhibited { get; set; }

    /// <summary>The tenant's Microsoft cloud: commercial (default), gcc-high, dod or china.</summary>
    public string Cloud { get; set; } = "commercial";

    public List<AcceptedDomainSeed> AcceptedDomains { get; set; } = [];

    public List<JsonObject> InboundConnectors { get; set; } = [];

    public List<JsonObject> OutboundConnectors { get; set; } = [];

    /// <summary>New-TransportRule parameters, created in order (each below the previous, unless it gives a Priority).</summary>
    public List<JsonObject> TransportRules { get; set; } = [];

    public List<string> ArcTrustedSealers { get; set; } = [];

    public List<string> IpAllowList { get; set; } = [];

    public List<JsonObject> SpoofItems { get; set; } = [];

    /// <summary>Set-RemoteDomain parameters for the remote domain Default.</summary>
    public JsonObject? RemoteDomain { get; set; }
}

public sealed class AppSeed
{
    public string AppId { get; set; } = "";

    /// <summary>The app's certificate: base64 DER or PEM text.</summary>
    public string? Certificate { get; set; }

    /// <summary>Or a file: .cer/.pem (public) or .pfx (its public part is used).</summary>
    public string? CertificateFile { get; set; }

    public X509Certificate2 LoadCertificate(string? baseDirectory)
    {
        if (!string.IsNullOrWhiteSpace(Certificate))
        {
            var text = Certificate.Trim();
            return text.StartsWith("-----", StringComparison.Ordinal)
                ? X509Certificate2.CreateFromPem(text)
                : X509CertificateLoader.LoadCertificate(Convert.FromBase64String(text));
        }
        if (string.IsNullOrWhiteSpace(CertificateFile))
            throw new InvalidDataException($"seed: app {AppId} needs a certificate or certificateFile");
        var path = Path.IsPathRooted(CertificateFile) || baseDirectory is null ? CertificateFile : Path.Combine(baseDirectory, CertificateFile);
        var bytes = File.ReadAllBytes(path);
        if (path.EndsWith(".pfx", StringComparison.OrdinalIgnoreCase) || path.EndsWith(".p12", StringComparison.OrdinalIgnoreCase))
            return X509CertificateLoader.LoadPkcs12(bytes, null);
        var pem = System.Text.Encoding.ASCII.GetString(bytes);
        return pem.Contains("-----BEGIN", StringComparison.Ordinal) ? X509Certificate2.CreateFromPem(pem) : X509CertificateLoader.LoadCertificate(bytes);
    }
}

public sealed class AcceptedDomainSeed
{
    public string DomainName { get; set; } = "";

    /// <summary>Authoritative, InternalRelay or ExternalRelay.</summary>
    public string DomainType { get; set; } = "Authoritative";
}
