// CPU per message of Postern's production path — the built-in scanning engines (authentication checks,
// attachments, URLs, impersonation; ClamAV and rspamd are external and off) and the ARC seal added on the way back
// to Microsoft 365 — for the three forms bench/corpus/exo-corpus.py writes: unsigned, DKIM-signed, and DKIM-signed
// carrying Exchange Online's i=1 ARC set. In process, one thread, keys served from an in-memory resolver loaded
// with the corpus's dns.txt. bench/signed-mail-bench.sh runs it.
//
//   signed-mail-bench CORPUS_DIR [SECONDS_PER_FORM [FORM]]
//
// With FORM (unsigned, signed or sealed), only that form is measured, scanning and sealing together: for a profiler.
//
// Checks first that every message authenticates as its form says (dkim=pass, arc=pass and a new i=2 set for the
// sealed ones), then prints per form: cpu_ms_per_msg for scanning + sealing, and for each alone (measured in five
// interleaved rounds); last,
// ratio_sealed_to_unsigned=… (issue 7's goal: at most 1.5).
using System.Diagnostics;
using System.Globalization;
using MimeKit.Cryptography;
using Postern.Bench;
using Postern.Core.Authentication;
using Postern.Core.Scanning;
using Postern.Core.Spool;

string[] forms = ["unsigned", "signed", "sealed"];
if (args.Length is < 1 or > 3 || !File.Exists(Path.Combine(args[0], "dns.txt")) || (args.Length == 3 && !forms.Contains(args[2])))
{
    Console.Error.WriteLine("usage: signed-mail-bench CORPUS_DIR [SECONDS_PER_FORM [unsigned|signed|sealed]]   (CORPUS_DIR as bench/corpus/exo-corpus.py writes it)");
    return 2;
}
var seconds = args.Length > 1 ? double.Parse(args[1], CultureInfo.InvariantCulture) : 10;
var corpus = forms.ToDictionary(f => f, f => Directory.GetFiles(Path.Combine(args[0], f), "*.eml").Order(StringComparer.Ordinal)
    .Select(File.ReadAllBytes).ToArray());

var dns = new InMemoryDnsResolver();
foreach (var line in File.ReadAllLines(Path.Combine(args[0], "dns.txt")))
{
    var parts = line.Split('\t', 3);
    if (parts is [var name, "TXT", var value])
        dns.AddTxt(name, value);
}

const string AuthservId = "arc.postern.example";
var path = new ProductionPath(dns, AuthservId);

// Warm-up, and the check that each form is what it claims to be.
foreach (var form in forms)
{
    foreach (var data in corpus[form])
    {
        for (var i = 0; i < 20; i++)
            await path.RunAsync(data);
        var (results, seal) = await path.RunAsync(data);
        var expected = form switch
        {
            "unsigned" => ("dkim=none", "arc=none", 1),
            "signed" => ("dkim=pass", "arc=none", 1),
            _ => ("dkim=pass", "arc=pass", 2),
        };
        if (!results.Contains(expected.Item1, StringComparison.Ordinal) || !results.Contains(expected.Item2, StringComparison.Ordinal)
            || !seal.Sealed || seal.Instance != expected.Item3)
        {
            Console.Error.WriteLine($"{form}: a message did not authenticate as expected: {results} (sealed {seal.Sealed}, i={seal.Instance})");
            return 1;
        }
    }
}

// CPU milliseconds and messages of one measurement.
(double CpuMs, int Messages) Measure(byte[][] messages, Func<byte[], Task> work, double duration)
{
    var process = Process.GetCurrentProcess();
    var before = process.TotalProcessorTime;
    var watch = Stopwatch.StartNew();
    var count = 0;
    while (watch.Elapsed.TotalSeconds < duration)
    {
        work(messages[count % messages.Length]).GetAwaiter().GetResult();
        count++;
    }
    process.Refresh();
    return ((process.TotalProcessorTime - before).TotalMilliseconds, count);
}

if (args.Length == 3)
{
    var (cpu, count) = Measure(corpus[args[2]], path.RunAsync, seconds);
    Console.WriteLine(FormattableString.Invariant($"{args[2]}_cpu_ms_per_msg={cpu / count:F3}"));
    return 0;
}

// Rounds that take every form and stage in turn, so that the machine's load, which changes by the minute, weighs on
// all of them alike: the ratios are what to compare.
const int Rounds = 5;
(string Stage, Func<byte[], Task> Work)[] stages = [("full", path.RunAsync), ("scan", path.ScanAsync), ("seal", path.SealAsync)];
var totals = new Dictionary<(string Form, string Stage), (double CpuMs, int Messages)>();
for (var round = 0; round < Rounds; round++)
{
    foreach (var form in forms)
    {
        foreach (var (stage, work) in stages)
        {
            var (cpu, count) = Measure(corpus[form], work, seconds / 3 / Rounds);
            var sum = totals.GetValueOrDefault((form, stage));
            totals[(form, stage)] = (sum.CpuMs + cpu, sum.Messages + count);
        }
    }
}
double PerMessage(string form, string stage) => totals[(form, stage)].CpuMs / totals[(form, stage)].Messages;

Console.WriteLine($"{"form",-9} {"messages",8} {"avg bytes",9} {"cpu ms/msg",10} {"scan",7} {"seal",7}");
foreach (var form in forms)
{
    Console.WriteLine(FormattableString.Invariant(
        $"{form,-9} {corpus[form].Length,8} {corpus[form].Average(m => m.Length),9:F0} {PerMessage(form, "full"),10:F3} {PerMessage(form, "scan"),7:F3} {PerMessage(form, "seal"),7:F3}"));
}
foreach (var form in forms)
    Console.WriteLine(FormattableString.Invariant($"{form}_cpu_ms_per_msg={PerMessage(form, "full"):F3}"));
Console.WriteLine(FormattableString.Invariant(
    $"ratio_sealed_to_unsigned={PerMessage("sealed", "full") / PerMessage("unsigned", "full"):F2} ratio_signed_to_unsigned={PerMessage("signed", "full") / PerMessage("unsigned", "full"):F2}"));
return 0;

/// <summary>
/// What Postern does to a message Exchange Online hands it, minus SMTP and the spool: the scanning pipeline as
/// `postern serve` builds it, the Authentication-Results it annotates written into the message, and the ARC seal
/// <see cref="Postern.Core.Delivery.OutgoingSigner"/> adds from them.
/// </summary>
internal sealed class ProductionPath
{
    private readonly BenchScanning _scanning;
    private readonly ArcSealer _sealer;
    private readonly string _authservId;
    private readonly AuthenticationMethodResult[] _unsignedResults = [new("spf", "pass"), new("dkim", "none"), new("dmarc", "pass"), new("arc", "none")];
    private readonly AuthenticationMethodResult[] _sealedResults = [new("spf", "pass"), new("dkim", "pass"), new("dmarc", "pass"), new("arc", "pass")];

    public ProductionPath(IDnsResolver dns, string authservId)
    {
        _authservId = authservId;
        _scanning = new BenchScanning(dns, authservId, "signed-mail-bench");
        _sealer = new ArcSealer(DkimSigningKey.GenerateRsa(), authservId, "postern1", authservId, new ArcChainVerifier(dns));
    }

    /// <summary>Scans, writes the annotations in, seals; returns the Authentication-Results and the seal's outcome.</summary>
    public async Task<(string Results, ArcSealOutcome Seal)> RunAsync(byte[] data)
    {
        var scan = await ScanAsync(data);
        using var raw = RawMessage.Parse(data);
        foreach (var (field, value) in scan.Headers)
            raw.Insert(0, RawMessage.Field(field, value));
        var outcome = await _sealer.SealAsync(raw, ArcSealer.CollectResults(raw, _authservId));
        return (string.Join("; ", raw.Values("Authentication-Results")), outcome);
    }

    /// <summary>Scanning alone, the message handed over by an Exchange Online outbound server.</summary>
    public Task<ScanResult> ScanAsync(byte[] data) => _scanning.ScanAsync(data, "40.107.22.51", "EUR05-DB8-obe.outbound.protection.outlook.com");

    /// <summary>Sealing alone, with the results scanning would have given (arc=pass when the message has a chain).</summary>
    public async Task SealAsync(byte[] data)
    {
        using var raw = RawMessage.Parse(data);
        await _sealer.SealAsync(raw, raw.Contains("ARC-Seal") ? _sealedResults : _unsignedResults);
    }
}
