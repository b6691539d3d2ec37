using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Postern.ExoEmulator;

// The Exchange Online emulator as a command: one process, one loopback port, seeded from JSON.
const string Usage = """
    Postern's Exchange Online emulator: the OAuth token endpoint and the admin API's InvokeCommand
    for the cmdlets Postern uses, keeping tenant state the way Exchange Online does.

    usage:
      Postern.ExoEmulator [--urls https://127.0.0.1:PORT] [--seed FILE.json] [--tls-certificate-out FILE.pem]
                          [--tls-certificate FILE.pfx] [--quiet]
                          [--smtp IP:PORT --maildir DIR [--internet IP:PORT] [--smart-host NAME=IP:PORT]...
                           [--trust-smart-host-certificate FILE.pem|FILE.pfx]... [--egress IP]
                           [--retry-delays 60s,5m,…] [--max-age 24h] [--dns IP:PORT [--dns-txt NAME=TEXT]...]]
      --smtp starts the mail side: one front door for every tenant (attribution, connectors, transport rules),
      mailboxes and "Internet" as Maildirs under --maildir; --internet listens for "every other MX";
      --dns answers (UDP) the tenants' MX, *.mail.protection.outlook.com and the ARC key, NXDOMAIN for the rest.
      Postern.ExoEmulator new-app-certificate FILE.pfx     (a certificate for an emulated Entra app:
                                                            FILE.pfx for postern, FILE.cer for the seed)
    """;

var urls = "https://127.0.0.1:5443";
string? seedPath = null, certificateOut = null, tlsPfx = null;
var quiet = false;
string? smtp = null, internet = null, maildir = null, egress = null, dns = null;
var smartHosts = new Dictionary<string, System.Net.IPEndPoint>(StringComparer.OrdinalIgnoreCase);
var trusted = new List<X509Certificate2>();
var dnsTxt = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
IReadOnlyList<TimeSpan>? retryDelays = null;
TimeSpan? maxAge = null;
try
{
    if (args.Length >= 1 && args[0] == "new-app-certificate")
    {
        if (args.Length != 2)
            throw new ArgumentException("new-app-certificate needs one FILE.pfx");
        NewAppCertificate(args[1]);
        return 0;
    }
    for (var i = 0; i < args.Length; i++)
    {
        string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
        switch (args[i])
        {
            case "--urls": urls = Next().Split(';')[0]; break;
            case "--seed": seedPath = Next(); break;
            case "--tls-certificate-out": certificateOut = Next(); break;
            case "--tls-certificate": tlsPfx = Next(); break;
            case "--quiet": quiet = true; break;
            case "--smtp": smtp = Next(); break;
            case "--internet": internet = Next(); break;
            case "--maildir": maildir = Next(); break;
            case "--egress": egress = Next(); break;
            case "--dns": dns = Next(); break;
            case "--dns-txt":
                var record = Next().Split('=', 2);
                if (record.Length != 2 || record[0].Length == 0)
                    throw new ArgumentException($"--dns-txt '{string.Join('=', record)}' must be NAME=TEXT");
                dnsTxt[record[0]] = record[1];
                break;
            case "--smart-host":
                var mapping = Next().Split('=', 2);
                if (mapping.Length != 2 || !System.Net.IPEndPoint.TryParse(mapping[1], out var hostEndPoint) || hostEndPoint.Port == 0)
                    throw new ArgumentException($"--smart-host '{string.Join('=', mapping)}' must be NAME=IP:PORT");
                smartHosts[mapping[0]] = hostEndPoint;
                break;
            case "--trust-smart-host-certificate":
                var file = Next();
                trusted.Add(file.EndsWith(".pfx", StringComparison.OrdinalIgnoreCase)
                    ? X509CertificateLoader.LoadPkcs12FromFile(file, null)
                    : X509Certificate2.CreateFromPem(File.ReadAllText(file)));
                break;
            case "--retry-delays": retryDelays = Next().Split(',').Select(Duration).ToArray(); break;
            case "--max-age": maxAge = Duration(Next()); break;
            case "-h" or "--help": Console.WriteLine(Usage); return 0;
            default: throw new ArgumentException($"unknown argument '{args[i]}'");
        }
    }
    var emulator = new ExoEmulator();
    if (seedPath is not null)
        EmulatorSeed.Load(seedPath).ApplyTo(emulator, Path.GetDirectoryName(Path.GetFullPath(seedPath)));
    var tls = tlsPfx is null ? null : X509CertificateLoader.LoadPkcs12FromFile(tlsPfx, null);
    Action<string> log = quiet ? _ => { } : line => Console.WriteLine($"{DateTime.UtcNow:HH:mm:ss.fff} {line}");
    await using var server = await ExoEmulatorServer.StartAsync(emulator, urls, tls, log);
    certificateOut ??= Path.Combine(Path.GetTempPath(), $"postern-exo-emulator-{server.BaseAddress.Port}.pem");
    await File.WriteAllTextAsync(certificateOut, server.TlsCertificate.ExportCertificatePem() + "\n");
    Console.WriteLine($"Exchange Online emulator listening on {server.BaseAddress}");
    Console.WriteLine($"  token endpoint:  {server.BaseAddress}{{tenant}}/oauth2/v2.0/token");
    Console.WriteLine($"  admin API:       {server.BaseAddress}adminapi/beta/{{tenant}}/InvokeCommand");
    Console.WriteLine($"  TLS certificate: {certificateOut} (give it to postern m365 connect --trust-certificate)");
    foreach (var tenant in emulator.Tenants)
        Console.WriteLine($"  tenant {tenant.Organization} ({tenant.TenantId}), apps: {(tenant.Apps.Count == 0 ? "none" : string.Join(", ", tenant.Apps.Keys))}");
    await using var transport = smtp is null ? null : await MailFlowFromArguments(emulator);
    if (transport is not null)
    {
        Console.WriteLine($"  mail front door: {transport.FrontDoorEndPoint} (every tenant), Maildirs in {transport.Mailboxes.Root}");
        if (transport.InternetEndPoint is { } internetEndPoint)
            Console.WriteLine($"  Internet MX:     {internetEndPoint} (mail lands in {Path.Combine(transport.Mailboxes.Root, "Internet")})");
        Console.WriteLine($"  ARC key:         {transport.Arc.DnsName} TXT \"{transport.Arc.DnsRecord}\"");
        transport.Log.Recorded += e => log("mail " + e);
    }
    await using var dnsServer = transport is null || dns is null ? null
        : Postern.ExoEmulator.MailFlow.EmulatorDns.Start(transport, System.Net.IPEndPoint.TryParse(dns, out var dnsEndPoint) ? dnsEndPoint : throw new ArgumentException($"--dns '{dns}' is not IP:PORT"), dnsTxt);
    if (dnsServer is not null)
        Console.WriteLine($"  DNS:             {dnsServer.EndPoint} (UDP; tenants' MX, the front door, the ARC key)");
    Console.WriteLine("Ctrl-C stops it.");
    var stop = new TaskCompletionSource();
    Console.CancelKeyPress += (_, e) => { e.Cancel = true; stop.TrySetResult(); };
    using var term = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGTERM, c => { c.Cancel = true; stop.TrySetResult(); });
    await stop.Task;
    return 0;
}
catch (Exception ex) when (ex is ArgumentException or InvalidDataException or IOException or System.Text.Json.JsonException or CryptographicException or FormatException or UriFormatException)
{
    Console.Error.WriteLine("error: " + ex.Message);
    Console.Error.WriteLine(Usage);
    return 1;
}

async Task<Postern.ExoEmulator.MailFlow.ExoTransport> MailFlowFromArguments(ExoEmulator emulator)
{
    if (maildir is null)
        throw new ArgumentException("--smtp needs --maildir DIR");
    static System.Net.IPEndPoint EndPoint(string value, string option) =>
        System.Net.IPEndPoint.TryParse(value, out var endPoint) ? endPoint : throw new ArgumentException($"{option} '{value}' is not IP:PORT");
    var options = new Postern.ExoEmulator.MailFlow.MailFlowOptions
    {
        FrontDoor = EndPoint(smtp!, "--smtp"),
        Internet = internet is null ? null : EndPoint(internet, "--internet"),
        MaildirRoot = Path.GetFullPath(maildir),
        SmartHostAddresses = smartHosts,
        TrustedCertificates = trusted,
        RetryDelays = retryDelays ?? Postern.ExoEmulator.MailFlow.MailFlowOptions.DefaultRetryDelays,
        MaxAge = maxAge ?? TimeSpan.FromHours(24),
        EgressAddress = egress is null ? null : System.Net.IPAddress.TryParse(egress, out var address) ? address : throw new ArgumentException($"--egress '{egress}' is not an IP address"),
    };
    return await Postern.ExoEmulator.MailFlow.ExoTransport.StartAsync(emulator, options);
}

static TimeSpan Duration(string value)
{
    var number = value.TrimEnd('s', 'm', 'h');
    if (!double.TryParse(number, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var n) || n <= 0 || number.Length == value.Length)
        throw new ArgumentException($"'{value}' is not a duration such as 30s, 5m or 24h");
    return value[^1] switch { 's' => TimeSpan.FromSeconds(n), 'm' => TimeSpan.FromMinutes(n), _ => TimeSpan.FromHours(n) };
}

static void NewAppCertificate(string path)
{
    using var key = RSA.Create(2048);
    var request = new CertificateRequest("CN=Postern Exchange Online app", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
    using var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddYears(2));
    File.WriteAllBytes(path, certificate.Export(X509ContentType.Pkcs12));
    if (!OperatingSystem.IsWindows())
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
    var cer = Path.ChangeExtension(path, ".cer");
    File.WriteAllText(cer, certificate.ExportCertificatePem() + "\n");
    Console.WriteLine($"{path}: certificate and private key (no password), for postern m365 connect --certificate");
    Console.WriteLine($"{cer}: the certificate alone, for the seed's \"certificateFile\"");
    Console.WriteLine($"thumbprint {certificate.Thumbprint}");
}
