using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json.Nodes;
using Postern.ExoEmulator;
using Postern.M365.Client;
using Postern.M365.Exo;

namespace Postern.M365.Tests;

/// <summary>
/// An emulated Exchange Online on a loopback port with the Contoso tenant and Postern's app
/// registered; the client reaches it through MSAL and HTTPS like the real service.
/// </summary>
internal sealed class EmulatedTenantHarness : IAsyncDisposable
{
    public const string AppId = "8d3c2b1a-0f9e-4d8c-b7a6-5e4d3c2b1a0f";

    private static readonly Lazy<X509Certificate2> SharedAppCertificate = new(() => CreateAppCertificate());

    private static readonly Lazy<X509Certificate2> SharedTlsCertificate = new(ExoEmulatorServer.CreateTlsCertificate);

    private EmulatedTenantHarness(ExoEmulatorServer server, X509Certificate2 appCertificate)
    {
        Server = server;
        AppCertificate = appCertificate;
    }

    public ExoEmulatorServer Server { get; }

    public ExoEmulator.ExoEmulator Emulator => Server.Emulator;

    public EmulatedTenant Tenant => Emulator.Tenant(TestTenants.ContosoId);

    public X509Certificate2 AppCertificate { get; }

    /// <summary>The recorded waits of the client's retries.</summary>
    public List<TimeSpan> Waits { get; } = [];

    /// <summary>The sample seed (tools/Postern.ExoEmulator/samples/contoso.json): 5 rules, 2 foreign connectors, foreign list entries.</summary>
    public static string SampleSeed()
    {
        var path = Path.Combine(CmdletReferenceTests.RepositoryRoot(), "tools", "Postern.ExoEmulator", "samples", "contoso.json");
        var seed = JsonNode.Parse(File.ReadAllText(path), documentOptions: new System.Text.Json.JsonDocumentOptions { CommentHandling = System.Text.Json.JsonCommentHandling.Skip })!;
        var app = seed["tenants"]![0]!["apps"]![0]!.AsObject();
        app.Remove("certificateFile");
        app["certificate"] = Convert.ToBase64String(SharedAppCertificate.Value.RawData);
        return seed.ToJsonString();
    }

    public static async Task<EmulatedTenantHarness> StartAsync(string? seedJson = null)
    {
        var emulator = new ExoEmulator.ExoEmulator();
        if (seedJson is not null)
            EmulatorSeed.Parse(seedJson).ApplyTo(emulator);
        var tenant = emulator.FindTenant(TestTenants.ContosoId.ToString()) ?? emulator.AddTenant(TestTenants.ContosoId, "contoso.onmicrosoft.com");
        tenant.AddAcceptedDomain("contoso.com");
        tenant.AddAcceptedDomain("contoso.net");
        // The tenant's certificate domain, as the provider has the customer add it (MC1226222: attribution by certificate).
        foreach (var region in Core.Tenants.Region.All)
            tenant.AddAcceptedDomain(Core.Certificates.TenantCertificates.NameFor(TestTenants.Contoso(region), "postern.example"));
        ExoEmulator.ExoEmulator.RegisterApp(tenant, AppId, SharedAppCertificate.Value);
        var server = await ExoEmulatorServer.StartAsync(emulator, tlsCertificate: SharedTlsCertificate.Value);
        return new EmulatedTenantHarness(server, SharedAppCertificate.Value);
    }

    public ExoConnection Connection(int pageSize = 1000) => new()
    {
        TenantId = TestTenants.ContosoId,
        Organization = "contoso.onmicrosoft.com",
        AppId = AppId,
        Certificate = AppCertificate,
        Endpoint = Server.BaseAddress,
        Authority = Server.BaseAddress,
        TrustedServerCertificate = Server.TlsCertificate,
        PageSize = pageSize,
    };

    /// <summary>A client whose retry waits are recorded, not slept (unless <paramref name="realDelays"/>).</summary>
    public ExoRestClient Client(int pageSize = 1000, bool realDelays = false, Microsoft.Extensions.Logging.ILogger? logger = null) =>
        new(Connection(pageSize), logger, delay: realDelays ? null : (wait, _) => { lock (Waits) Waits.Add(wait); return Task.CompletedTask; });

    /// <summary>A change made directly in the tenant, as an admin in the Exchange admin centre would.</summary>
    public void Direct(string cmdlet, params (string Name, object? Value)[] parameters)
    {
        var json = new JsonObject();
        foreach (var (name, value) in parameters)
        {
            json[name] = value switch
            {
                null => null,
                string s => JsonValue.Create(s),
                bool b => JsonValue.Create(b),
                int i => JsonValue.Create(i),
                string[] list => new JsonArray([.. list.Select(x => (JsonNode)JsonValue.Create(x))]),
                _ => throw new ArgumentException("unsupported value"),
            };
        }
        Tenant.Invoke(cmdlet, json);
    }

    public JsonObject Snapshot() => Tenant.Snapshot();

    public IReadOnlyList<JsonObject> Rules => ((JsonArray)Snapshot()["TransportRules"]!).Cast<JsonObject>().ToArray();

    public JsonObject Rule(string name) => Rules.Single(r => (string?)r["Name"] == name);

    /// <summary>The cmdlets that change something, of the requests recorded since <paramref name="since"/>.</summary>
    public IReadOnlyList<EmulatorRequest> Changes(int since = 0) =>
        Emulator.Requests.Skip(since).Where(r => !r.Cmdlet.StartsWith("Get-", StringComparison.OrdinalIgnoreCase)).ToArray();

    public async ValueTask DisposeAsync() => await Server.DisposeAsync();

    private static X509Certificate2 CreateAppCertificate()
    {
        using var key = RSA.Create(2048);
        var request = new CertificateRequest("CN=Postern test app", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        using var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddYears(1));
        return X509CertificateLoader.LoadPkcs12(certificate.Export(X509ContentType.Pkcs12), null, X509KeyStorageFlags.Exportable);
    }
}

/// <summary>Records every call a wrapped client makes, for the cmdlet-reference check.</summary>
internal sealed class RecordingExchange(IExchangeOnline inner) : IExchangeOnline
{
    public List<CmdletInvocation> Calls { get; } = [];

    public Task<ExoResponse> InvokeAsync(CmdletInvocation invocation, CancellationToken cancellationToken)
    {
        lock (Calls)
            Calls.Add(invocation);
        return inner.InvokeAsync(invocation, cancellationToken);
    }
}
