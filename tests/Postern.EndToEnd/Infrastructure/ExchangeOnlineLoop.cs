using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json.Nodes;
using Postern.ExoEmulator;
using Postern.ExoEmulator.MailFlow;

namespace Postern.EndToEnd.Infrastructure;

/// <summary>A Postern tenant the loop sets up, and how it is provisioned in Exchange Online.</summary>
public sealed record LoopTenantSpec(string Name, string Domain, string Profile = "integrated", string Outbound = "off")
{
    /// <summary>The tenant's service offering creates OnPremises inbound connectors disabled.</summary>
    public bool OnPremisesInboundProhibited { get; init; }

    /// <summary>Run `m365 apply` and `m365 activate` at start (false: the test does it).</summary>
    public bool Provision { get; init; } = true;
}

/// <summary>
/// The whole loop on loopback: real `postern serve`, the simulated Exchange Online (admin API and mail side) with
/// one emulated tenant per Postern tenant, provisioned through the real `postern m365 connect/apply/activate`, and
/// a DNS server. Addresses keep the parties apart as on the Internet:
/// Postern listens on 127.0.0.1 and delivers from 127.0.0.2 (its EgressIPs), Exchange Online's one front door for
/// every tenant is 127.0.0.3 (the tenants' MX and MTAs) and it sends from 127.0.0.5; "every other MX" is 127.0.0.4.
/// Exchange Online's smart hosts for Postern are m365-array-1 (nothing listens: the first always fails) and
/// m365-array-2 (Postern's listener).
/// </summary>
public sealed class ExchangeOnlineLoop : IAsyncDisposable
{
    public const string AppId = "8d3c2b1a-0f9e-4d8c-b7a6-5e4d3c2b1a0f";
    public const string PosternEgress = "127.0.0.2";
    public const string FrontDoorAddress = "127.0.0.3";
    public const string InternetAddress = "127.0.0.4";
    public const string ExchangeEgress = "127.0.0.5";

    private readonly PosternProcess _postern;
    private readonly TestDirectory _directory;

    private ExchangeOnlineLoop(PosternProcess postern, TestDirectory directory, ExoEmulatorServer server, ExoTransport transport, DnsServer dns,
        PosternConfig config, int mailPort)
    {
        _postern = postern;
        _directory = directory;
        Server = server;
        Transport = transport;
        Dns = dns;
        Config = config;
        MailPort = mailPort;
    }

    public ExoEmulatorServer Server { get; }
    public ExoEmulator.ExoEmulator Emulator => Server.Emulator;
    public ExoTransport Transport { get; }
    public DnsServer Dns { get; }
    public PosternConfig Config { get; }

    /// <summary>The port of the front door (127.0.0.3) and of the Internet MX (127.0.0.4).</summary>
    public int MailPort { get; }

    public Dictionary<string, TestTenant> Tenants { get; } = new(StringComparer.OrdinalIgnoreCase);

    public EmulatedTenant Exchange(string name) => Emulator.Tenant(Guid.Parse(Tenants[name].TenantId));

    public static async Task<ExchangeOnlineLoop> StartAsync(TestDirectory directory, PosternProcess postern, params LoopTenantSpec[] specs)
    {
        var mailPort = FreePort.Next();
        var posternPort = FreePort.Next();
        var deadPort = FreePort.Next();
        var server = await ExoEmulatorServer.StartAsync(new ExoEmulator.ExoEmulator());
        var transport = await ExoTransport.StartAsync(server.Emulator, new MailFlowOptions
        {
            FrontDoor = new IPEndPoint(IPAddress.Parse(FrontDoorAddress), mailPort),
            Internet = new IPEndPoint(IPAddress.Parse(InternetAddress), mailPort),
            MaildirRoot = directory.Sub("maildir"),
            SmartHostAddresses = new(StringComparer.OrdinalIgnoreCase)
            {
                ["m365-array-1.eu.postern.example"] = new IPEndPoint(IPAddress.Loopback, deadPort),
                ["m365-array-2.eu.postern.example"] = new IPEndPoint(IPAddress.Loopback, posternPort),
            },
            EgressAddress = IPAddress.Parse(ExchangeEgress),
            RetryDelays = [TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(3)],
            MaxAge = TimeSpan.FromSeconds(40),
        });
        var zone = new StringBuilder("$TTL 300\n");
        foreach (var spec in specs)
            zone.Append($"{spec.Domain}. IN MX 10 exo.test.\n");
        zone.Append($"exo.test. IN A {FrontDoorAddress}\n");
        zone.Append($"internet.test. IN A {InternetAddress}\n");
        zone.Append("*. IN MX 10 internet.test.\n");
        zone.Append($"*. IN A {InternetAddress}\n");
        zone.Append($"{transport.Arc.DnsName}. IN TXT {Quoted(transport.Arc.DnsRecord)}\n");
        var dns = await DnsServer.StartAsync(directory, zone.ToString());
        var config = new PosternConfig
        {
            Listeners = [new PosternListener("m365", posternPort, RequireTls: true)],
            DeliveryRequireTls = true,
            DnsServers = [dns.EndPoint],
            MxPort = mailPort,
            BindAddresses = [PosternEgress],
            Extra = new JsonObject
            {
                // The node serves region eu: its smart-host listener presents *.eu.postern.example, the connectors' TlsDomain.
                ["Region"] = "eu",
                ["Regions"] = new JsonObject { ["eu"] = new JsonObject { ["EgressIPs"] = new JsonArray(PosternEgress) } },
            },
        };
        var loop = new ExchangeOnlineLoop(postern, directory, server, transport, dns, config, mailPort);
        try
        {
            foreach (var spec in specs)
            {
                var tenant = await postern.CreateTenantAsync(spec.Name, spec.Domain, $"{FrontDoorAddress}:{mailPort}");
                (await postern.RunCliAsync("tenant", "set", spec.Name, "--outbound", spec.Outbound)).EnsureSuccess();
                loop.Tenants[spec.Name] = tenant;
                var exchange = server.Emulator.AddTenant(Guid.Parse(tenant.TenantId), $"{spec.Name}.onmicrosoft.com");
                exchange.AddAcceptedDomain(spec.Domain);
                // The tenant's certificate domain, added as an accepted domain as the provider has its customers do.
                exchange.AddAcceptedDomain($"{tenant.TenantId}.eu.postern.example");
                exchange.OnPremisesInboundProhibited = spec.OnPremisesInboundProhibited;
                ExoEmulator.ExoEmulator.RegisterApp(exchange, AppId, AppCertificate.Value);
            }
            await postern.StartServeAsync(config);
            // Postern's smart-host certificate is self-signed: Exchange Online is told to trust it as if a CA had issued it.
            transport.Options.TrustedCertificates.Add(X509CertificateLoader.LoadPkcs12FromFile(Path.Combine(postern.DataDirectory, "certs", "eu.pfx"), null));
            foreach (var spec in specs.Where(s => s.Provision))
            {
                (await loop.ConnectAsync(spec.Name)).EnsureSuccess();
                (await loop.ApplyAsync(spec.Name, spec.Profile, spec.Outbound)).EnsureSuccess();
                (await postern.RunCliAsync("m365", "activate", spec.Name)).EnsureSuccess();
            }
        }
        catch
        {
            await loop.DisposeAsync();
            throw;
        }
        return loop;
    }

    public Task<CommandResult> ConnectAsync(string name)
    {
        var pfx = _directory.PathOf("app.pfx");
        if (!File.Exists(pfx))
            File.WriteAllBytes(pfx, AppCertificate.Value.Export(X509ContentType.Pkcs12));
        var trust = _directory.PathOf("emulator.pem");
        File.WriteAllText(trust, Server.TlsCertificate.ExportCertificatePem());
        return _postern.RunCliAsync("m365", "connect", name, "--app-id", AppId, "--certificate", pfx,
            "--organization", $"{name}.onmicrosoft.com", "--endpoint", Server.BaseAddress.ToString(),
            "--authority", Server.BaseAddress.ToString(), "--trust-certificate", trust);
    }

    public Task<CommandResult> ApplyAsync(string name, string profile, string outbound)
    {
        var keyFile = _directory.PathOf($"{name}.key");
        File.WriteAllText(keyFile, Tenants[name].RelayKey + "\n");
        return _postern.RunCliAsync("m365", "apply", name, "--profile", profile, "--outbound", outbound,
            "--relay-key-file", keyFile, "--config", _postern.ConfigPath!);
    }

    /// <summary>swaks from the Internet (127.0.0.1) straight to the front door, as a sender's MTA does after the MX lookup.</summary>
    public Task<SwaksResult> SendFromInternetAsync(string from, string to, string subject, params string[] headers)
    {
        var args = new List<string>
        {
            "--server", $"{FrontDoorAddress}:{MailPort}", "--from", from, "--to", to, "--helo", "mail.external.test",
            "--header", $"Subject: {subject}", "--header", $"Message-ID: <{Guid.NewGuid():N}@external.test>",
            "--body", $"Body of {subject}.", "--timeout", "30", "--hide-informational",
        };
        foreach (var header in headers)
            args.AddRange(["--add-header", header]);
        return Swaks.RunAsync([.. args]);
    }

    /// <summary>A mailbox user of <paramref name="tenant"/> sends (as from Outlook).</summary>
    public string SendFromMailbox(string tenant, string from, string to, string subject, string body = "Hello.")
    {
        var message = $"From: <{from}>\r\nTo: <{to}>\r\nSubject: {subject}\r\nDate: {DateTimeOffset.UtcNow:R}\r\n" +
            $"Message-ID: <{Guid.NewGuid():N}@{from[(from.IndexOf('@') + 1)..]}>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n{body}\r\n";
        return Transport.Submit(Exchange(tenant), from, [to], Encoding.UTF8.GetBytes(message));
    }

    /// <summary>Waits until <paramref name="mailbox"/> (an address, or "Internet") holds <paramref name="count"/> messages.</summary>
    public async Task<IReadOnlyList<MailText>> WaitForMailboxAsync(string mailbox, int count = 1, TimeSpan? timeout = null)
    {
        await Poll.UntilAsync(() => Transport.Mailboxes.Messages(mailbox).Count >= count, timeout ?? TimeSpan.FromSeconds(60),
            $"{count} message(s) in mailbox {mailbox}", Diagnostics);
        return Mailbox(mailbox);
    }

    public IReadOnlyList<MailText> Mailbox(string mailbox) =>
        [.. Transport.Mailboxes.Messages(mailbox).Select(f => new MailText(File.ReadAllText(f)))];

    public string Diagnostics() =>
        "--- emulated Exchange Online ---\n" + string.Join("\n", Transport.Log.Events) + "\n--- connections ---\n" +
        string.Join("\n", Transport.Log.Connections.Select(c => $"{c.At:HH:mm:ss.fff} {c.Client} tls={c.Tls} certificate={c.CertificateSubject}"));

    private static readonly Lazy<X509Certificate2> AppCertificate = new(() =>
    {
        using var key = RSA.Create(2048);
        var request = new CertificateRequest("CN=Postern Exchange Online app", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        using var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddYears(1));
        return X509CertificateLoader.LoadPkcs12(certificate.Export(X509ContentType.Pkcs12), null);
    });

    /// <summary>A TXT value as zone-file strings of at most 255 characters each.</summary>
    private static string Quoted(string text) =>
        string.Join(" ", text.Chunk(200).Select(c => "\"" + new string(c) + "\""));

    public async ValueTask DisposeAsync()
    {
        await Transport.DisposeAsync();
        await Server.DisposeAsync();
        await Dns.DisposeAsync();
    }
}
