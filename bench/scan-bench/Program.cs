// Messages per second through Postern's scanning pipeline (ScanningPipeline with the built-in engines and the
// default policy), in process: no SMTP, no spool, no network. bench/scan-bench.sh runs it on the corpus that
// bench/scan-corpus.py writes.
//
//   scan-bench CORPUS_DIR [SECONDS]
//
// Prints a table (per message type, one thread: time per message, verdict, findings), then
//   pipeline_1_thread_msgs_per_s=…, seal_1_thread_msgs_per_s=… (ARC sealing alone) and, last,
//   pipeline_msgs_per_s=… threads=… cpu_ms_per_msg=…
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging.Abstractions;
using MimeKit.Cryptography;
using Postern.Core.Authentication;
using Postern.Core.Configuration;
using Postern.Core.Relay;
using Postern.Core.Scanning;
using Postern.Core.Scanning.Engines;
using Postern.Core.Spool;
using Postern.Core.Tenants;

if (args.Length is < 1 or > 2 || !Directory.Exists(args[0]))
{
    Console.Error.WriteLine("usage: scan-bench CORPUS_DIR [SECONDS]");
    return 2;
}
var seconds = args.Length > 1 ? double.Parse(args[1], CultureInfo.InvariantCulture) : 10;
var files = Directory.GetFiles(args[0], "*.eml").Order(StringComparer.Ordinal).Select(f => (Name: Path.GetFileName(f), Data: File.ReadAllBytes(f))).ToArray();
if (files.Length == 0)
{
    Console.Error.WriteLine($"no .eml files in {args[0]}");
    return 2;
}

var spill = Directory.CreateTempSubdirectory("scan-bench-").FullName;
var tenant = new Tenant
{
    Id = Guid.Parse("6f1c2a57-3a0e-4bde-9a53-1f0c2d4e5a60"),
    Name = "bench",
    Region = "eu",
    LoopToken = "0123456789abcdef0123456789abcdef",
    CreatedAt = DateTimeOffset.UtcNow,
};
var table = new RoutingTable(1, [tenant], [new ProtectedDomain("bench.test", tenant.Id, [])],
    vips: new Dictionary<Guid, IReadOnlyList<string>> { [tenant.Id] = ["Jane Doe", "John Smith"] });
// The engines `postern serve` runs with Postern:Scanning at its defaults (ClamAV and rspamd are external and off):
// the authentication checks get a resolver that answers NXDOMAIN at once, so what is measured is their CPU, not DNS latency.
IScanEngine[] engines =
[
    new AuthenticationEngine(new AuthenticationChecker(new OfflineResolver()), "arc.postern.example"),
    new AttachmentTypeEngine(),
    new UrlEngine(),
    new ImpersonationEngine(),
];
var pipeline = new ScanningPipeline(engines, TimeSpan.FromSeconds(60), NullLogger<ScanningPipeline>.Instance);
var cleanup = new CleanupStage(new PosternOptions());

async Task<ScanResult> ScanAsync(byte[] data)
{
    var envelope = new Envelope
    {
        QueueId = QueueId.New(),
        ReceivedAt = DateTimeOffset.UtcNow,
        TenantId = tenant.Id,
        MailFrom = "alex@partner.example",
        Recipients = [new EnvelopeRecipient("alice@bench.test", RecipientRoute.Tenant)],
        Client = "203.0.113.5",
        HeloName = "mail.partner.example",
    };
    // As the relay does: the received bytes in a MessageContent, cleaned up, scanned before they are acknowledged.
    using var content = new MessageContent(spill);
    await content.WriteAsync(data, CancellationToken.None);
    var clean = cleanup.Clean(HeaderSection.Parse(data, complete: true), content);
    return await pipeline.ScanAsync(new ScanRequest(envelope, tenant, clean, table), CancellationToken.None);
}

// Warm-up: every message a few times (the JIT compiles fully optimised on first call; this settles caches and pools).
foreach (var (_, data) in files)
{
    for (var i = 0; i < 20; i++)
        await ScanAsync(data);
}

Console.WriteLine($"{"message",-28} {"bytes",8} {"µs/msg",8}  {"verdict",-44} findings");
foreach (var (name, data) in files)
{
    var result = await ScanAsync(data);
    var n = 0;
    var watch = Stopwatch.StartNew();
    while (watch.Elapsed.TotalSeconds < Math.Max(0.3, seconds / files.Length / 2))
    {
        await ScanAsync(data);
        n++;
    }
    var verdict = result.MostSevere;
    var findings = string.Join(", ", result.Findings.Select(f => f.Kind).Distinct());
    Console.WriteLine($"{name,-28} {data.Length,8} {watch.Elapsed.TotalMilliseconds * 1000 / n,8:F0}  {$"{verdict.Action.ToString().ToLowerInvariant()} ({verdict.Rule})",-44} {(findings.Length == 0 ? "-" : findings)}");
}

async Task<(double Rate, double CpuMsPerMessage, double MegabytesPerSecond)> RunAsync(int threads)
{
    long count = 0, bytes = 0;
    var process = Process.GetCurrentProcess();
    var cpuBefore = process.TotalProcessorTime;
    var watch = Stopwatch.StartNew();
    var deadline = TimeSpan.FromSeconds(seconds);
    var workers = Enumerable.Range(0, threads).Select(t => Task.Run(async () =>
    {
        for (var i = t; watch.Elapsed < deadline; i++)
        {
            var data = files[i % files.Length].Data;
            await ScanAsync(data);
            Interlocked.Increment(ref count);
            Interlocked.Add(ref bytes, data.Length);
        }
    })).ToArray();
    await Task.WhenAll(workers);
    var elapsed = watch.Elapsed.TotalSeconds;
    process.Refresh();
    var cpu = (process.TotalProcessorTime - cpuBefore).TotalMilliseconds;
    return (count / elapsed, cpu / count, bytes / elapsed / 1e6);
}

var one = await RunAsync(1);
Console.WriteLine(FormattableString.Invariant($"pipeline_1_thread_msgs_per_s={one.Rate:F1} cpu_ms_per_msg={one.CpuMsPerMessage:F3} mb_per_s={one.MegabytesPerSecond:F1}"));
// What ARC-sealing costs on its own, one thread: the set a message gets on its way back to Microsoft 365.
var sealer = new ArcSealer(DkimSigningKey.GenerateRsa(), "arc.postern.example", "postern1", "arc.postern.example");
AuthenticationMethodResult[] sealResults = [new("spf", "pass"), new("dkim", "none"), new("dmarc", "none"), new("arc", "none")];
{
    var sealCount = 0;
    var process = Process.GetCurrentProcess();
    var cpuBefore = process.TotalProcessorTime;
    var watch = Stopwatch.StartNew();
    while (watch.Elapsed.TotalSeconds < Math.Max(1, seconds / 2))
    {
        using var raw = RawMessage.Parse(files[sealCount % files.Length].Data);
        await sealer.SealAsync(raw, sealResults);
        sealCount++;
    }
    process.Refresh();
    Console.WriteLine(FormattableString.Invariant(
        $"seal_1_thread_msgs_per_s={sealCount / watch.Elapsed.TotalSeconds:F1} cpu_ms_per_msg={(process.TotalProcessorTime - cpuBefore).TotalMilliseconds / sealCount:F3}"));
}

var threads = Environment.ProcessorCount;
var all = await RunAsync(threads);
Directory.Delete(spill, recursive: true);
Console.WriteLine(FormattableString.Invariant($"pipeline_msgs_per_s={all.Rate:F1} threads={threads} cpu_ms_per_msg={all.CpuMsPerMessage:F3} mb_per_s={all.MegabytesPerSecond:F1}"));
return 0;

/// <summary>Every name NXDOMAIN, at once: the authentication checks run their full logic with no network.</summary>
internal sealed class OfflineResolver : IDnsResolver
{
    public Task<DnsAnswer<string>> QueryTxtAsync(string name, CancellationToken cancellationToken) => Task.FromResult(DnsAnswer<string>.NonExistent);

    public Task<DnsAnswer<IPAddress>> QueryAddressesAsync(string name, AddressFamily family, CancellationToken cancellationToken) =>
        Task.FromResult(DnsAnswer<IPAddress>.NonExistent);

    public Task<DnsAnswer<MxHost>> QueryMxAsync(string name, CancellationToken cancellationToken) => Task.FromResult(DnsAnswer<MxHost>.NonExistent);

    public Task<DnsAnswer<string>> QueryPtrAsync(IPAddress address, CancellationToken cancellationToken) => Task.FromResult(DnsAnswer<string>.NonExistent);
}
