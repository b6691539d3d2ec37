using System.CommandLine;
using System.Security.Cryptography.X509Certificates;
using Postern.Cli;
using Postern.Core.Storage;
using Postern.Core.Tenants;

namespace Postern.M365.Tests;

/// <summary>A data directory with the Contoso tenant, and `postern m365 …` run in-process against it.</summary>
internal sealed class CliHarness : IDisposable
{
    public CliHarness(bool relayEnabled = true, OutboundMode outbound = OutboundMode.Direct)
    {
        DataDir = Path.Combine(Path.GetTempPath(), "postern-m365-" + Guid.NewGuid().ToString("N"));
        var store = new TenantStore(new PosternDatabase(DataDir));
        var tenant = store.AddTenant("contoso", TestTenants.ContosoId, "eu", createdBefore2023: false);
        store.UpdateTenant(tenant with
        {
            Outbound = outbound,
            RelayKeyHash = relayEnabled ? RelayKey.Hash(TestTenants.RelayKey) : null,
        });
        foreach (var domain in TestTenants.Domains)
            store.AddDomain(store.GetTenant("contoso"), domain, [new MtaAddress($"{domain.Replace('.', '-')}.mail.protection.outlook.com", 25)]);
        RelayKeyFile = Path.Combine(DataDir, "relay.key");
        File.WriteAllText(RelayKeyFile, TestTenants.RelayKey + "\n");
    }

    public string DataDir { get; }

    public string RelayKeyFile { get; }

    public Tenant Tenant => new TenantStore(new PosternDatabase(DataDir)).GetTenant("contoso");

    /// <summary>Runs `postern --data-dir DIR ARGS…`; returns the exit code and what went to stdout and stderr.</summary>
    public async Task<(int Exit, string Out, string Error)> RunAsync(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var cli = new CliContext { Out = output, Error = error };
        var root = new RootCommand("test") { cli.DataDir, M365Commands.Create(cli) };
        var exit = await root.Parse(["--data-dir", DataDir, .. args]).InvokeAsync();
        return (exit, output.ToString(), error.ToString());
    }

    /// <summary>`postern m365 connect` to the emulator, with the app certificate as a PFX file.</summary>
    public async Task<(int Exit, string Out, string Error)> ConnectAsync(EmulatedTenantHarness exchange, params string[] extra)
    {
        var appId = extra.Length >= 2 && extra[0] == "--app-id" ? extra[1] : EmulatedTenantHarness.AppId;
        return await ConnectAsync(exchange, appId, extra.Length >= 2 && extra[0] == "--app-id" ? extra[2..] : extra);
    }

    private async Task<(int Exit, string Out, string Error)> ConnectAsync(EmulatedTenantHarness exchange, string appId, string[] extra)
    {
        var pfx = Path.Combine(DataDir, "app.pfx");
        File.WriteAllBytes(pfx, exchange.AppCertificate.Export(X509ContentType.Pkcs12, "pfx-password"));
        var passwordFile = Path.Combine(DataDir, "pfx.password");
        File.WriteAllText(passwordFile, "pfx-password\n");
        var trust = Path.Combine(DataDir, "emulator.pem");
        File.WriteAllText(trust, exchange.Server.TlsCertificate.ExportCertificatePem());
        return await RunAsync([
            "m365", "connect", "contoso", "--app-id", appId, "--certificate", pfx,
            "--certificate-password-file", passwordFile, "--organization", "contoso.onmicrosoft.com",
            "--endpoint", exchange.Server.BaseAddress.ToString(), "--authority", exchange.Server.BaseAddress.ToString(),
            "--trust-certificate", trust, .. extra,
        ]);
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(DataDir, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
