using System.Diagnostics;

namespace Postern.EndToEnd.Infrastructure;

/// <summary>
/// An authoritative DNS server for a test zone on a loopback port (UDP and TCP), written in Python
/// with Debian's python3-dnslib. Wildcard owners ("*.example.test.", or "*." for every name) are
/// answered for names without records of their own; other names get NXDOMAIN.
/// </summary>
public sealed class DnsServer : IAsyncDisposable
{
    private const string Script = """
        import signal, sys, threading
        from dnslib import RR, QTYPE, RCODE
        from dnslib.server import DNSServer, BaseResolver, DNSLogger

        port, zonefile = int(sys.argv[1]), sys.argv[2]
        RRS = RR.fromZone(open(zonefile).read())

        def records_for(qname):
            exact = [rr for rr in RRS if rr.rname == qname]
            if exact:
                return exact
            # Wildcards: *.parent for the nearest parent, "*." catches every name.
            labels = [l.decode("ascii", "replace").lower() for l in qname.label]
            for i in range(1, len(labels) + 1):
                wildcard = ".".join(["*"] + labels[i:]) + "."
                found = [rr for rr in RRS if str(rr.rname).lower() == wildcard]
                if found:
                    return [RR(qname, rr.rtype, rr.rclass, rr.ttl, rr.rdata) for rr in found]
            return []

        class ZoneResolver(BaseResolver):
            def resolve(self, request, handler):
                reply = request.reply()
                q = request.q
                names = records_for(q.qname)
                if not names:
                    reply.header.rcode = RCODE.NXDOMAIN
                for rr in names:
                    if q.qtype in (rr.rtype, QTYPE.ANY):
                        reply.add_answer(rr)
                reply.header.aa = 1
                return reply

        servers = [DNSServer(ZoneResolver(), address="127.0.0.1", port=port, tcp=tcp, logger=DNSLogger(prefix=False))
                   for tcp in (False, True)]
        for s in servers:
            s.start_thread()
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        print("ready", flush=True)
        stop.wait()
        """;

    private readonly Process _process;

    private DnsServer(Process process, int port)
    {
        _process = process;
        Port = port;
    }

    public int Port { get; }

    /// <summary>"127.0.0.1:PORT", as Postern's Dns:Servers setting wants it.</summary>
    public string EndPoint => $"127.0.0.1:{Port}";

    /// <summary>Every name has MX mx.sink.test and address 127.0.0.1: all outbound mail goes to one loopback sink (Delivery:MxPort).</summary>
    public const string CatchAllZone = """
        $TTL 300
        *.              IN MX 10 mx.sink.test.
        *.              IN A  127.0.0.1
        mx.sink.test.   IN A  127.0.0.1
        """;

    /// <summary>Starts a server answering from <paramref name="zone"/> (zone-file text, absolute names with trailing dots).</summary>
    public static async Task<DnsServer> StartAsync(TestDirectory directory, string zone)
    {
        var scriptPath = directory.PathOf("dns_server.py");
        var zonePath = directory.PathOf("zone.txt");
        await File.WriteAllTextAsync(scriptPath, Script);
        await File.WriteAllTextAsync(zonePath, zone);
        var port = FreePort.Next();
        var psi = new ProcessStartInfo("/usr/bin/python3") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { scriptPath, port.ToString(), zonePath })
            psi.ArgumentList.Add(a);
        var log = directory.PathOf("dns.log");
        var writer = new StreamWriter(log) { AutoFlush = true };
        var process = new Process { StartInfo = psi, EnableRaisingEvents = true };
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (writer) writer.WriteLine(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (writer) writer.WriteLine(e.Data); };
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var server = new DnsServer(process, port);
        try
        {
            await Poll.UntilAsync(() => process.HasExited || FreePort.Accepts(port), TimeSpan.FromSeconds(20), $"DNS server on {server.EndPoint}");
            if (process.HasExited)
                throw new InvalidOperationException($"DNS server exited: {File.ReadAllText(log)}");
        }
        catch
        {
            await server.DisposeAsync();
            throw;
        }
        return server;
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            ProcessInfo.Signal(_process.Id, 15);
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            try
            {
                await _process.WaitForExitAsync(cts.Token);
            }
            catch (OperationCanceledException)
            {
                _process.Kill(entireProcessTree: true);
                await _process.WaitForExitAsync();
            }
        }
        _process.Dispose();
    }
}
