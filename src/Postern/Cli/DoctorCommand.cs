using System.CommandLine;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Postern.Core;
using Postern.Core.Configuration;
using Postern.Core.Storage;

namespace Postern.Cli;

/// <summary>
/// `postern doctor`: checks a node's configuration and surroundings — the settings, the region certificate the
/// listeners present and each tenant's certificate (present, in date, not expiring within 14 days), the ARC key
/// published in DNS, the engines answering, the ports free or held by this node, free disk — and says what to fix.
/// Exit 0 when nothing failed (warnings allowed), 2 otherwise.
/// </summary>
public static partial class DoctorCommand
{
    private sealed record Finding(string Status, string What, string Detail, string? Fix = null);

    public static Command Create(CliContext cli)
    {
        var config = new Option<FileInfo?>("--config") { Description = "The server's JSON configuration (section \"Postern\"), as given to postern serve" };
        var json = new Option<bool>("--json") { Description = "Machine-readable output" };
        var command = new Command("doctor", "Check this node's configuration, certificates, DNS, engines, ports and disk, and say what to fix") { config, json };
        command.SetAction(cli.Run(async (result, cancellationToken) =>
        {
            var options = ServeCommand.Load(result.GetValue(config), result.GetResult(cli.DataDir) is { Implicit: false } ? result.GetValue(cli.DataDir) : null);
            var findings = new List<Finding>();
            var problems = options.Validate().ToArray();
            findings.AddRange(problems.Length == 0
                ? [new Finding("ok", "configuration", "every setting is valid")]
                : problems.Select(p => new Finding("fail", "configuration", p, "correct the setting")));
            if (problems.Length == 0)
            {
                var database = cli.Database(result);
                findings.AddRange(RegionCertificate(options));
                findings.AddRange(TenantCertificates(options, database));
                findings.Add(await ArcKeyAsync(options, cancellationToken));
                findings.AddRange(await EnginesAsync(options, cancellationToken));
                findings.AddRange(Ports(options));
                findings.Add(Disk(options));
            }
            if (result.GetValue(json))
                cli.Out.WriteLine(new JsonArray([.. findings.Select(f => (JsonNode)new JsonObject
                {
                    ["status"] = f.Status, ["check"] = f.What, ["detail"] = f.Detail, ["fix"] = f.Fix,
                })]).ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            else
                foreach (var f in findings)
                    cli.Out.WriteLine($"{f.Status.ToUpperInvariant(),-5} {f.What}: {f.Detail}{(f.Fix is null ? "" : $" — fix: {f.Fix}")}");
            return findings.Any(f => f.Status == "fail") ? 2 : 0;
        }));
        return command;
    }

    private static IEnumerable<Finding> RegionCertificate(PosternOptions options)
    {
        var region = options.Region;
        var configured = options.Certificates.TryGetValue(region, out var c) && !string.IsNullOrEmpty(c.Path) ? c : null;
        var path = configured?.Path ?? Path.Combine(options.DataDir, "certs", $"{region}.pfx");
        var what = $"certificate of region {region}";
        if (!File.Exists(path))
        {
            yield return configured is null
                ? new Finding("warn", what, $"not made yet ({path})", "postern serve makes a self-signed one on first start; import a CA-issued one for production")
                : new Finding("fail", what, $"{path} does not exist", $"correct Postern:Certificates:{region}:Path");
            yield break;
        }
        var (certificate, error) = Load(path, configured?.Password);
        if (certificate is null)
        {
            yield return new Finding("fail", what, $"cannot read {path}: {error}", $"check the file and Postern:Certificates:{region}:Password");
            yield break;
        }
        var expected = $"*.{region}.{options.ProductDomain}";
        var names = Names(certificate);
        yield return Expiry(what, certificate.NotAfter, $"renew it ({path})");
        yield return names.Contains(expected, StringComparer.OrdinalIgnoreCase)
            ? new Finding("ok", what, $"names {expected}, the TlsDomain Exchange Online checks")
            : new Finding("fail", what, $"names {string.Join(", ", names)}, not {expected}: Exchange Online's DomainValidation refuses the smart host",
                $"use a certificate for {expected}, or set Postern:Regions:{region}:CertificateSubject to what it names and apply again");
        if (certificate.Issuer == certificate.Subject)
            yield return new Finding("warn", what, "self-signed: Exchange Online accepts it only from a trusted authority", "import a CA-issued certificate (Postern:Certificates)");
    }

    private static (X509Certificate2? Certificate, string? Error) Load(string path, string? password)
    {
        try
        {
            return (X509CertificateLoader.LoadPkcs12FromFile(path, password), null);
        }
        catch (System.Security.Cryptography.CryptographicException ex)
        {
            return (null, ex.Message);
        }
    }

    private static IEnumerable<Finding> TenantCertificates(PosternOptions options, PosternDatabase database)
    {
        var tenants = new TenantStore(database).ListTenants();
        var store = new TenantCertificateStore(database);
        var otherRegions = tenants.Where(t => !t.Region.Equals(options.Region, StringComparison.OrdinalIgnoreCase)).Select(t => t.Name).ToArray();
        if (otherRegions.Length > 0)
            yield return new Finding("warn", "tenant regions", $"{string.Join(", ", otherRegions)} not in this node's region {options.Region}: this node presents the {options.Region} certificate",
                "serve those tenants from nodes of their region (Postern:Region)");
        foreach (var tenant in tenants)
        {
            var what = $"certificate of tenant {tenant.Name}";
            if (store.Find(tenant.Id) is not { } stored)
                yield return new Finding("fail", what, "none: the tenant's mail cannot be handed back to Exchange Online under its own name",
                    $"postern tenant certificate renew {tenant.Name}");
            else
                yield return Expiry(what, stored.NotAfter.UtcDateTime, $"postern tenant certificate renew {tenant.Name} (or import)");
        }
    }

    private static Finding Expiry(string what, DateTime notAfter, string fix)
    {
        var left = notAfter.ToUniversalTime() - DateTime.UtcNow;
        return left <= TimeSpan.Zero ? new Finding("fail", what, $"expired on {notAfter:u}", fix)
            : left < TimeSpan.FromDays(14) ? new Finding("warn", what, $"expires on {notAfter:u}, in {left.TotalDays:0} days", fix)
            : new Finding("ok", what, $"valid until {notAfter:u}");
    }

    private static async Task<Finding> ArcKeyAsync(PosternOptions options, CancellationToken cancellationToken)
    {
        var domain = options.Signing.ResolveArcDomain(options.ProductDomain);
        var name = $"{options.Signing.ArcSelector}._domainkey.{domain}";
        var what = "ARC key in DNS";
        var path = options.Signing.ArcKeyPath.Length > 0 ? options.Signing.ArcKeyPath : Path.Combine(options.DataDir, "keys", $"arc-{options.Signing.ArcSelector}.pem");
        if (!File.Exists(path))
            return new Finding("warn", what, $"no ARC key yet ({path})", "postern serve makes one on first start and logs the record to publish");
        var key = Core.Authentication.DkimSigningKey.FromPem(await File.ReadAllTextAsync(path, cancellationToken));
        var answer = await new Core.Authentication.DnsClientResolver(options.Dns).QueryTxtAsync(name, cancellationToken);
        var record = new Core.Authentication.DkimDnsRecord(domain, options.Signing.ArcSelector, key.KeyType, key.PublicKeyBase64).ZoneFileLine;
        if (answer.IsTemporaryFailure)
            return new Finding("fail", what, $"the lookup of {name} failed: {answer.Error}", "check Postern:Dns:Servers");
        var published = answer.Records.Select(r => PublicKey().Match(r)).Where(m => m.Success).Select(m => m.Groups[1].Value).ToArray();
        if (published.Length == 0)
            return new Finding("fail", what, $"{name} has no key: Microsoft 365 cannot verify Postern's ARC seals", $"publish {record}");
        return published.Contains(key.PublicKeyBase64, StringComparer.Ordinal)
            ? new Finding("ok", what, $"{name} publishes the key this node seals with")
            : new Finding("fail", what, $"{name} publishes another key than this node's", $"publish {record}");
    }

    private static async Task<IEnumerable<Finding>> EnginesAsync(PosternOptions options, CancellationToken cancellationToken)
    {
        var findings = new List<Finding>();
        async Task Probe(string engine, string where, string setting, Func<CancellationToken, Task> ping)
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(TimeSpan.FromSeconds(5));
            try
            {
                await ping(timeout.Token);
                findings.Add(new Finding("ok", engine, $"answers at {where}"));
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
            {
                findings.Add(new Finding("fail", engine, $"does not answer at {where}: {(ex is OperationCanceledException ? "timed out" : ex.Message)}",
                    $"start it, or correct {setting}"));
            }
        }
        if (options.Scanning.ClamAv.Enabled)
            await Probe("clamav", options.Scanning.ClamAv.Endpoint, "Postern:Scanning:ClamAv:Endpoint", ct => new Core.Scanning.Engines.ClamdClient(options.Scanning.ClamAv).PingAsync(ct));
        if (options.Scanning.Rspamd.Enabled)
        {
            using var rspamd = new Core.Scanning.Engines.RspamdClient(options.Scanning.Rspamd);
            await Probe("rspamd", options.Scanning.Rspamd.Url, "Postern:Scanning:Rspamd:Url", ct => rspamd.PingAsync(ct));
        }
        return findings;
    }

    private static IEnumerable<Finding> Ports(PosternOptions options)
    {
        foreach (var (what, endPoint, setting) in options.Listeners.Select((l, i) => ($"SMTP listener {l.Name}", l.EndPoint, $"Postern:Listeners:{i}:EndPoint"))
                     .Append(("HTTP", options.Http.EndPoint, "Postern:Http:EndPoint")))
        {
            var address = IPEndPoint.Parse(endPoint);
            using var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            Finding finding;
            try
            {
                socket.Bind(address);
                socket.Listen(1);
                finding = new Finding("ok", what, $"{endPoint} is free to listen on");
            }
            catch (SocketException ex) when (ex.SocketErrorCode == SocketError.AddressAlreadyInUse)
            {
                finding = new Finding("warn", what, $"{endPoint} is in use: by this node's postern serve, or by another program", $"if it is not postern, free the port or change {setting}");
            }
            catch (SocketException ex)
            {
                finding = new Finding("fail", what, $"cannot listen on {endPoint}: {ex.Message}", $"correct {setting}");
            }
            yield return finding;
        }
    }

    private static Finding Disk(PosternOptions options)
    {
        var directory = Path.GetFullPath(options.DataDir);
        Directory.CreateDirectory(directory);
        var free = new DriveInfo(directory).AvailableFreeSpace;
        var minimum = options.Health.MinFreeSpoolBytes;
        return free < minimum
            ? new Finding("fail", "disk", $"{free / (1024 * 1024)} MiB free for {directory}, below Postern:Health:MinFreeSpoolBytes", "free space or move Postern:DataDir")
            : new Finding("ok", "disk", $"{free / (1024 * 1024)} MiB free for {directory}");
    }

    private static IReadOnlyList<string> Names(X509Certificate2 certificate)
    {
        var names = new List<string> { certificate.GetNameInfo(X509NameType.SimpleName, false) };
        foreach (var extension in certificate.Extensions.OfType<X509SubjectAlternativeNameExtension>())
            names.AddRange(extension.EnumerateDnsNames());
        return names;
    }

    [GeneratedRegex(@"(?:^|;)\s*p=([A-Za-z0-9+/=\s]+)")]
    private static partial Regex PublicKey();
}
