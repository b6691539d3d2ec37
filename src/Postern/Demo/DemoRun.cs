using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using MailKit.Net.Smtp;
using MailKit.Security;
using MimeKit;
using Postern.Cli;
using Postern.Core;

namespace Postern.Demo;

/// <summary>
/// One run of `postern demo`. Everything stays on loopback, on addresses that keep the parties apart as on the
/// Internet: Postern listens on 127.0.0.1 and delivers from 127.0.0.2; the emulated Exchange Online's one front door
/// for every tenant is 127.0.0.3 and it sends from 127.0.0.5; "the Internet" is 127.0.0.4. Postern is provisioned
/// into the emulator through the same `postern m365 connect/apply/activate` an operator runs.
/// </summary>
internal sealed class DemoRun(DemoSettings settings, TextWriter output) : IAsyncDisposable
{
    private const string AppId = "8d3c2b1a-0f9e-4d8c-b7a6-5e4d3c2b1a0f";
    private const string PosternEgress = "127.0.0.2";
    private const string FrontDoor = "127.0.0.3";
    private const string InternetMx = "127.0.0.4";
    private const string ExchangeEgress = "127.0.0.5";

    private static readonly (string Name, string Domain, Guid Id)[] Tenants =
    [
        ("contoso", "contoso.com", Guid.Parse("2f4a9c1e-7b3d-4e5f-8a6b-1c2d3e4f5a6b")),
        ("fabrikam", "fabrikam.com", Guid.Parse("6b1e0c9d-3a2f-4d5e-9c8b-7a6f5e4d3c2b")),
    ];

    private readonly List<ChildProcess> _children = [];
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private string Data => Path.Combine(settings.Directory, "data");
    private string ConfigPath => Path.Combine(settings.Directory, "postern.json");
    private string Maildir => Path.Combine(settings.Directory, "maildir");

    public async Task<int> RunAsync(CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(settings.Directory);
        output.WriteLine($"Postern demo in {settings.Directory} (Ctrl-C stops everything it started)");
        var emulatorPath = FindEmulator();
        var engines = await Step("Looking for clamd and Rspamd", () => EngineProbe.FindAsync(settings.Clamd, settings.Rspamd, cancellationToken),
            e => $"clamd: {e.ClamdSummary}; Rspamd: {e.RspamdSummary}");

        var posternPort = FreePort();
        var mailPort = FreePort();
        var emulatorPort = FreePort();
        var httpPort = FreePort();
        await File.WriteAllTextAsync(ConfigPath, Configuration(posternPort, mailPort, httpPort, engines), cancellationToken);

        var keys = new Dictionary<string, string>();
        await Step("Creating the tenants contoso (contoso.com) and fabrikam (fabrikam.com)", async () =>
        {
            foreach (var (name, domain, id) in Tenants)
            {
                await CliAsync("tenant", "add", name, "--tenant-id", id.ToString(), "--region", "eu", "--config", ConfigPath);
                await CliAsync("domain", "add", name, domain, "--mta", $"{FrontDoor}:{mailPort}");
                keys[name] = (await CliAsync("relay", "enable", name)).Split('\n', StringSplitOptions.RemoveEmptyEntries)[^1].Trim();
                await CliAsync("tenant", "set", name, "--outbound", "via-m365");
                await File.WriteAllTextAsync(Path.Combine(settings.Directory, $"{name}.key"), keys[name] + "\n", cancellationToken);
                OwnerOnly(Path.Combine(settings.Directory, $"{name}.key"));
            }
            return 0;
        }, _ => "each with its relay key, its loop token and its own certificate");

        var serve = await Step("Starting postern serve", async () =>
        {
            var self = Environment.ProcessPath is { } path && !Path.GetFileNameWithoutExtension(path).Equals("dotnet", StringComparison.OrdinalIgnoreCase)
                ? path
                : typeof(DemoRun).Assembly.Location;
            var child = Start(self, ["serve", "--data-dir", Data, "--config", ConfigPath], "postern.log");
            await WaitForPortAsync(child, IPAddress.Loopback, posternPort, "postern serve", cancellationToken);
            return child;
        }, c => $"smart host 127.0.0.1:{posternPort}, metrics http://127.0.0.1:{httpPort}/metrics, log {c.LogPath}");

        var emulatorCertificate = Path.Combine(settings.Directory, "emulator.pem");
        await Step("Starting the Exchange Online emulator", async () =>
        {
            WriteSeed();
            string[] args =
            [
                "--urls", $"https://127.0.0.1:{emulatorPort}", "--seed", Path.Combine(settings.Directory, "seed.json"),
                "--tls-certificate-out", emulatorCertificate,
                "--smtp", $"{FrontDoor}:{mailPort}", "--internet", $"{InternetMx}:{mailPort}", "--maildir", Maildir,
                "--smart-host", $"m365-array-1.eu.postern.example=127.0.0.1:{posternPort}",
                "--smart-host", $"m365-array-2.eu.postern.example=127.0.0.1:{posternPort}",
                "--trust-smart-host-certificate", Path.Combine(Data, "certs", "eu.pfx"),
                "--egress", ExchangeEgress, "--retry-delays", "2s,5s,10s", "--max-age", "5m", "--dns", $"{FrontDoor}:{mailPort}",
                // Postern's ARC key, published as the operator publishes it, so a seal Postern made verifies on the next hop.
                "--dns-txt", $"postern1._domainkey.arc.postern.example={ArcKeyRecord()}",
            ];
            var child = Start(emulatorPath, args, "emulator.log");
            await WaitForPortAsync(child, IPAddress.Parse(FrontDoor), mailPort, "the emulator's front door", cancellationToken);
            await WaitForPortAsync(child, IPAddress.Loopback, emulatorPort, "the emulator's admin API", cancellationToken);
            return child;
        }, c => $"admin API https://127.0.0.1:{emulatorPort}, one front door {FrontDoor}:{mailPort} for both tenants, log {c.LogPath}");

        foreach (var (name, _, _) in Tenants)
        {
            await Step($"Provisioning {name} in Exchange Online: m365 connect, apply, activate", async () =>
            {
                await CliAsync("m365", "connect", name, "--app-id", AppId, "--certificate", Path.Combine(settings.Directory, "app.pfx"),
                    "--organization", $"{name}.onmicrosoft.com", "--endpoint", $"https://127.0.0.1:{emulatorPort}/",
                    "--authority", $"https://127.0.0.1:{emulatorPort}/", "--trust-certificate", emulatorCertificate);
                var apply = await CliAsync("m365", "apply", name, "--profile", "integrated", "--outbound", "via-m365",
                    "--relay-key-file", Path.Combine(settings.Directory, $"{name}.key"), "--config", ConfigPath);
                await CliAsync("m365", "activate", name);
                return apply.Split('\n').LastOrDefault(l => l.StartsWith("Done:", StringComparison.Ordinal))?.Trim().TrimEnd('.') ?? "Done";
            }, done => done + ", rules enabled");
        }

        using var http = EmulatorClient(emulatorCertificate, emulatorPort);
        var samples = DemoSamples.Create(DateTime.UtcNow.ToString("HHmmss", System.Globalization.CultureInfo.InvariantCulture));
        await Step($"Sending {samples.Count} sample messages", async () =>
        {
            foreach (var sample in samples)
                await SendAsync(sample, http, mailPort, cancellationToken);
            return 0;
        }, _ => "3 from the Internet to alice@contoso.com, 2 from alice's mailbox");

        var outcomes = await Step("Waiting for each to arrive", () => WaitForOutcomesAsync(samples, engines, cancellationToken),
            o => $"{o.Count(x => x.Final)} of {o.Count} done");
        output.WriteLine();
        output.WriteLine("Where each message ended, and why:");
        foreach (var outcome in outcomes)
        {
            output.WriteLine($"  {outcome.Sample.Label,-21} → {outcome.Where}");
            foreach (var why in outcome.Why)
                output.WriteLine($"  {"",-21}   {why}");
        }
        output.WriteLine();
        output.WriteLine($"Mailboxes: {Maildir}/<address>/new, the Internet: {Maildir}/Internet/new; logs: {serve.LogPath}, {Path.Combine(settings.Directory, "emulator.log")}.");
        output.WriteLine($"Try: postern --data-dir {Data} trace list   ·   postern --data-dir {Data} m365 verify contoso");
        var ok = outcomes.All(o => o.Final);
        if (settings.ExitWhenDone)
        {
            output.WriteLine(ok ? "Demo complete." : "Demo incomplete: some messages did not arrive (see the logs).");
            return ok ? 0 : 1;
        }
        output.WriteLine("Postern and the emulator keep running; Ctrl-C stops both.");
        try
        {
            await Task.Delay(Timeout.Infinite, cancellationToken);
        }
        catch (OperationCanceledException)
        {
            output.WriteLine("Stopping.");
        }
        return ok ? 0 : 1;
    }

    private async Task<T> Step<T>(string what, Func<Task<T>> body, Func<T, string> done)
    {
        output.WriteLine($"[{_clock.Elapsed.TotalSeconds,5:0.0}s] {what} …");
        // On a terminal a spinner shows the step is alive; redirected output (logs, tests) gets the lines alone.
        var result = ReferenceEquals(output, Console.Out) && !Console.IsOutputRedirected
            ? await Spectre.Console.AnsiConsole.Status().StartAsync(what, _ => body())
            : await body();
        output.WriteLine($"         ✓ {done(result)}");
        return result;
    }

    /// <summary>Runs a postern command in this process, exactly as the command line does; its errors end the demo.</summary>
    private async Task<string> CliAsync(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        var cli = new CliContext { Out = stdout, Error = stderr };
        var exit = await PosternCommands.Create(cli).Parse(["--data-dir", Data, .. args]).InvokeAsync();
        if (exit != 0)
            throw new PosternException($"postern {string.Join(' ', args.Select(a => a.Contains(' ') ? $"'{a}'" : a))} failed ({exit}): {(stderr + stdout.ToString()).Trim()}");
        return stdout.ToString();
    }

    private string Configuration(int posternPort, int mailPort, int httpPort, EngineProbe engines)
    {
        var scanning = new JsonObject { ["Authentication"] = true };
        if (engines.Clamd is { } clamd)
            scanning["ClamAv"] = new JsonObject { ["Enabled"] = true, ["Endpoint"] = clamd };
        if (engines.Rspamd is { } rspamd)
            scanning["Rspamd"] = new JsonObject { ["Enabled"] = true, ["Url"] = rspamd };
        var postern = new JsonObject
        {
            ["HostName"] = "postern.demo",
            ["Region"] = "eu",
            ["Listeners"] = new JsonArray(new JsonObject { ["Name"] = "m365", ["EndPoint"] = $"127.0.0.1:{posternPort}", ["RequireTls"] = true }),
            ["Delivery"] = new JsonObject
            {
                ["RequireTls"] = true,
                // The emulator's front door has a self-signed certificate; a real tenant's MX has a public one.
                ["ValidateServerCertificate"] = false,
                ["BindAddresses"] = new JsonArray(PosternEgress),
                ["RetryDelays"] = new JsonArray("00:00:02", "00:00:05", "00:00:10"),
            },
            ["Regions"] = new JsonObject { ["eu"] = new JsonObject { ["EgressIPs"] = new JsonArray(PosternEgress) } },
            // The emulator's DNS (UDP, same port number as its front door): Microsoft's ARC key, the tenants' MX, and
            // NXDOMAIN for every other name, so SPF, DKIM, DMARC and ARC are checked without leaving loopback.
            ["Dns"] = new JsonObject { ["Servers"] = new JsonArray($"{FrontDoor}:{mailPort}") },
            ["Scanning"] = scanning,
            ["Http"] = new JsonObject { ["EndPoint"] = $"127.0.0.1:{httpPort}" },
        };
        return new JsonObject { ["Postern"] = postern }.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }

    /// <summary>The TXT record of the ARC key postern serve made on its first start (DATA/keys/arc-postern1.pem).</summary>
    private string ArcKeyRecord()
    {
        using var key = RSA.Create();
        key.ImportFromPem(File.ReadAllText(Path.Combine(Data, "keys", "arc-postern1.pem")));
        return "v=DKIM1; k=rsa; p=" + Convert.ToBase64String(key.ExportSubjectPublicKeyInfo());
    }

    private void WriteSeed()
    {
        using var key = RSA.Create(2048);
        var request = new CertificateRequest("CN=Postern demo app", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        using var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddYears(1));
        var pfx = Path.Combine(settings.Directory, "app.pfx");
        File.WriteAllBytes(pfx, certificate.Export(X509ContentType.Pkcs12));
        OwnerOnly(pfx);
        File.WriteAllText(Path.Combine(settings.Directory, "app.cer"), certificate.ExportCertificatePem() + "\n");
        var tenants = new JsonArray();
        foreach (var (name, domain, id) in Tenants)
            tenants.Add(new JsonObject
            {
                ["tenantId"] = id.ToString(),
                ["organization"] = $"{name}.onmicrosoft.com",
                ["apps"] = new JsonArray(new JsonObject { ["appId"] = AppId, ["certificateFile"] = "app.cer" }),
                // The tenant's certificate domain is an accepted domain, as the provider has each customer add it.
                ["acceptedDomains"] = new JsonArray(new JsonObject { ["domainName"] = domain }, new JsonObject { ["domainName"] = $"{id}.eu.postern.example" }),
            });
        File.WriteAllText(Path.Combine(settings.Directory, "seed.json"), new JsonObject { ["tenants"] = tenants }.ToJsonString());
    }

    private string FindEmulator()
    {
        if (settings.EmulatorPath is { } given)
            return File.Exists(given) ? given : throw new PosternException($"--emulator '{given}' does not exist");
        var beside = Path.Combine(AppContext.BaseDirectory, "Postern.ExoEmulator.dll");
        if (File.Exists(beside))
            return beside;
        // From a build of the repository: tools/Postern.ExoEmulator/bin/<configuration>/net10.0.
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            var bin = Path.Combine(directory.FullName, "tools", "Postern.ExoEmulator", "bin");
            if (!Directory.Exists(bin))
                continue;
            var found = new[] { "Release", "Debug" }.Select(c => Path.Combine(bin, c, "net10.0", "Postern.ExoEmulator.dll")).FirstOrDefault(File.Exists);
            if (found is not null)
                return found;
        }
        throw new PosternException("the Exchange Online emulator is not built: run 'dotnet build tools/Postern.ExoEmulator -c Release', " +
            "or give its Postern.ExoEmulator.dll with --emulator");
    }

    private ChildProcess Start(string program, IReadOnlyList<string> args, string log)
    {
        var child = ChildProcess.Start(program, args, Path.Combine(settings.Directory, log));
        _children.Add(child);
        return child;
    }

    private static async Task WaitForPortAsync(ChildProcess child, IPAddress address, int port, string what, CancellationToken cancellationToken)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(90);
        while (DateTime.UtcNow < deadline)
        {
            if (child.HasExited)
                throw new PosternException($"{what} exited with {child.ExitCode}:\n{child.LogTail()}");
            try
            {
                using var client = new TcpClient();
                await client.ConnectAsync(address, port, cancellationToken);
                return;
            }
            catch (SocketException)
            {
                await Task.Delay(200, cancellationToken);
            }
        }
        throw new PosternException($"{what} did not listen on {address}:{port} within 90 s:\n{child.LogTail()}");
    }

    private static HttpClient EmulatorClient(string certificatePem, int port)
    {
        var trusted = X509Certificate2.CreateFromPem(File.ReadAllText(certificatePem));
        var handler = new HttpClientHandler
        {
            ServerCertificateCustomValidationCallback = (_, certificate, _, _) => certificate?.Thumbprint == trusted.Thumbprint,
        };
        return new HttpClient(handler) { BaseAddress = new Uri($"https://127.0.0.1:{port}/"), Timeout = TimeSpan.FromSeconds(30) };
    }

    private static async Task SendAsync(DemoSample sample, HttpClient emulator, int mailPort, CancellationToken cancellationToken)
    {
        if (sample.FromInternet)
        {
            // A sender's MTA on the Internet (127.0.0.1) delivering to the tenant's MX, the front door.
            using var smtp = new SmtpClient { LocalEndPoint = new IPEndPoint(IPAddress.Loopback, 0), LocalDomain = "mta.example.org" };
            smtp.ServerCertificateValidationCallback = (_, _, _, _) => true;
            await smtp.ConnectAsync(FrontDoor, mailPort, SecureSocketOptions.StartTlsWhenAvailable, cancellationToken);
            await smtp.SendAsync(sample.Message, MailboxAddress.Parse(sample.From), [MailboxAddress.Parse(sample.To)], cancellationToken);
            await smtp.DisconnectAsync(true, cancellationToken);
            return;
        }
        var text = new MemoryStream();
        await sample.Message.WriteToAsync(FormatOptions.Default, text, cancellationToken);
        var organization = sample.From.EndsWith("@contoso.com", StringComparison.OrdinalIgnoreCase) ? "contoso.onmicrosoft.com" : "fabrikam.onmicrosoft.com";
        var response = await emulator.PostAsJsonAsync($"_emulator/tenants/{organization}/send", new JsonObject
        {
            ["from"] = sample.From,
            ["to"] = new JsonArray(sample.To),
            ["message"] = Encoding.UTF8.GetString(text.ToArray()),
        }, cancellationToken);
        if (!response.IsSuccessStatusCode)
            throw new PosternException($"the emulator refused the '{sample.Label}' sample: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync(cancellationToken)}");
    }

    private async Task<IReadOnlyList<DemoOutcome>> WaitForOutcomesAsync(IReadOnlyList<DemoSample> samples, EngineProbe engines, CancellationToken cancellationToken)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(2);
        IReadOnlyList<DemoOutcome> outcomes = [];
        while (true)
        {
            var trace = JsonNode.Parse(await CliAsync("trace", "list", "--json", "--limit", "200"))!.AsArray();
            outcomes = [.. samples.Select(s => DemoOutcome.Of(s, Maildir, trace, engines, Tenants.ToDictionary(t => t.Id.ToString(), t => t.Name)))];
            if (outcomes.All(o => o.Final) || DateTime.UtcNow > deadline)
                return outcomes;
            await Task.Delay(500, cancellationToken);
        }
    }

    private static void OwnerOnly(string path)
    {
        if (!OperatingSystem.IsWindows())
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
    }

    private static int FreePort()
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)socket.LocalEndPoint!).Port;
    }

    public async ValueTask DisposeAsync()
    {
        // The emulator first, so nothing hands Postern new mail while it stops.
        for (var i = _children.Count - 1; i >= 0; i--)
            await _children[i].DisposeAsync();
    }
}
