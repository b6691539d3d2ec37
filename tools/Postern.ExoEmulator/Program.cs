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
      Postern.ExoEmulator new-app-certificate FILE.pfx     (a certificate for an emulated Entra app:
                                                            FILE.pfx for postern, FILE.cer for the seed)
    """;

var urls = "https://127.0.0.1:5443";
string? seedPath = null, certificateOut = null, tlsPfx = null;
var quiet = false;
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
