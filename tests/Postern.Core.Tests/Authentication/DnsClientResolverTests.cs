using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Postern.Core.Authentication;

namespace Postern.Core.Tests.Authentication;

/// <summary>
/// <see cref="DnsClientResolver"/> against a real DNS server on loopback (a few lines of python over Debian's
/// python3-dnslib), to pin how DNS outcomes map to <see cref="DnsLookupStatus"/>: records, NOERROR with no
/// data, NXDOMAIN, SERVFAIL, and a server that never answers.
/// </summary>
public sealed class DnsClientResolverTests : IClassFixture<DnsClientResolverTests.LocalDnsServer>
{
    private readonly LocalDnsServer _server;

    public DnsClientResolverTests(LocalDnsServer server) => _server = server;

    [LocalDnsFact]
    public async Task Txt_character_strings_of_one_record_are_joined()
    {
        var answer = await _server.Resolver.QueryTxtAsync("txt.test", CancellationToken.None);
        Assert.Equal(DnsLookupStatus.Success, answer.Status);
        Assert.Equal(2, answer.Records.Count);
        Assert.Contains("v=spf1 ip4:192.0.2.0/24 -all", answer.Records);
        Assert.Contains("second", answer.Records);
    }

    [LocalDnsFact]
    public async Task Addresses_mx_and_ptr_are_read()
    {
        var v4 = await _server.Resolver.QueryAddressesAsync("host.test", AddressFamily.InterNetwork, CancellationToken.None);
        var v6 = await _server.Resolver.QueryAddressesAsync("host.test", AddressFamily.InterNetworkV6, CancellationToken.None);
        var mx = await _server.Resolver.QueryMxAsync("txt.test", CancellationToken.None);
        var ptr = await _server.Resolver.QueryPtrAsync(IPAddress.Parse("192.0.2.1"), CancellationToken.None);

        Assert.Equal([IPAddress.Parse("192.0.2.1")], v4.Records);
        Assert.Equal([IPAddress.Parse("2001:db8::1")], v6.Records);
        Assert.Equal([new MxHost(10, "host.test")], mx.Records);
        Assert.Equal(["host.test"], ptr.Records);
    }

    [LocalDnsFact]
    public async Task No_data_nxdomain_servfail_and_silence_are_told_apart()
    {
        Assert.Equal(DnsLookupStatus.NoData, (await _server.Resolver.QueryTxtAsync("host.test", CancellationToken.None)).Status);
        Assert.Equal(DnsLookupStatus.NonExistentDomain, (await _server.Resolver.QueryTxtAsync("missing.test", CancellationToken.None)).Status);
        Assert.Equal(DnsLookupStatus.ServerFailure, (await _server.Resolver.QueryTxtAsync("servfail.test", CancellationToken.None)).Status);
        Assert.Equal(DnsLookupStatus.Timeout, (await _server.Resolver.QueryTxtAsync("silent.test", CancellationToken.None)).Status);
    }

    [LocalDnsFact]
    public async Task A_name_without_records_and_a_server_failure_are_asked_once_while_the_answer_is_kept()
    {
        var resolver = _server.NewResolver();
        for (var i = 0; i < 3; i++)
        {
            Assert.Equal(DnsLookupStatus.NonExistentDomain, (await resolver.QueryTxtAsync("missing-once.test", CancellationToken.None)).Status);
            Assert.Equal(DnsLookupStatus.ServerFailure, (await resolver.QueryTxtAsync("servfail-once.test", CancellationToken.None)).Status);
        }

        Assert.Equal(1, await _server.QueriesForAsync("missing-once.test"));
        Assert.Equal(1, await _server.QueriesForAsync("servfail-once.test"));
    }

    [LocalDnsFact]
    public async Task A_server_that_did_not_answer_is_asked_again()
    {
        var resolver = _server.NewResolver();
        Assert.Equal(DnsLookupStatus.Timeout, (await resolver.QueryTxtAsync("silent-twice.test", CancellationToken.None)).Status);
        Assert.Equal(DnsLookupStatus.Timeout, (await resolver.QueryTxtAsync("silent-twice.test", CancellationToken.None)).Status);

        Assert.Equal(2, await _server.QueriesForAsync("silent-twice.test"));
    }

    [LocalDnsFact]
    public async Task Spf_over_real_dns_passes()
    {
        var result = await new SpfChecker(_server.Resolver).CheckMailFromAsync(IPAddress.Parse("192.0.2.77"), "someone@txt.test", "host.test");
        Assert.Equal(SpfResult.Pass, result.Result);
    }

    /// <summary>A UDP DNS server on 127.0.0.1 with a fixed zone; stopped (by its process) when the tests end.</summary>
    public sealed class LocalDnsServer : IDisposable
    {
        private const string Server = """
            import socket, sys
            from dnslib import DNSRecord, RR, QTYPE, RCODE, A, AAAA, TXT, MX, PTR

            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind(('127.0.0.1', 0))
            print(sock.getsockname()[1], flush=True)
            counts = {}
            while True:
                data, peer = sock.recvfrom(4096)
                request = DNSRecord.parse(data)
                name = str(request.q.qname).rstrip('.').lower()
                qtype = QTYPE[request.q.qtype]
                reply = request.reply()
                if name.startswith('count-of.'):
                    reply.add_answer(RR(name, QTYPE.TXT, ttl=0, rdata=TXT([str(counts.get(name[len('count-of.'):], 0))])))
                    sock.sendto(reply.pack(), peer)
                    continue
                counts[name] = counts.get(name, 0) + 1
                if name == 'silent.test' or name == 'silent-twice.test':
                    continue
                if name in ('servfail.test', 'servfail-once.test'):
                    reply.header.rcode = RCODE.SERVFAIL
                elif name == 'txt.test' and qtype == 'TXT':
                    reply.add_answer(RR(name, QTYPE.TXT, rdata=TXT(['v=spf1 ip4:192.0.2.0/24', ' -all'])))
                    reply.add_answer(RR(name, QTYPE.TXT, rdata=TXT(['second'])))
                elif name == 'txt.test' and qtype == 'MX':
                    reply.add_answer(RR(name, QTYPE.MX, rdata=MX('host.test')))
                elif name == 'host.test' and qtype == 'A':
                    reply.add_answer(RR(name, QTYPE.A, rdata=A('192.0.2.1')))
                elif name == 'host.test' and qtype == 'AAAA':
                    reply.add_answer(RR(name, QTYPE.AAAA, rdata=AAAA('2001:db8::1')))
                elif name == '1.2.0.192.in-addr.arpa' and qtype == 'PTR':
                    reply.add_answer(RR(name, QTYPE.PTR, rdata=PTR('host.test')))
                elif name not in ('txt.test', 'host.test', '1.2.0.192.in-addr.arpa'):
                    reply.header.rcode = RCODE.NXDOMAIN
                sock.sendto(reply.pack(), peer)
            """;

        private readonly Process? _process;

        public LocalDnsServer()
        {
            if (!LocalDnsFactAttribute.Available)
                return;
            var start = new ProcessStartInfo(PythonDkim.Python) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            start.ArgumentList.Add("-c");
            start.ArgumentList.Add(Server);
            _process = Process.Start(start) ?? throw new InvalidOperationException("python3 did not start");
            var line = _process.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(30)).GetAwaiter().GetResult();
            var port = int.Parse(line ?? throw new InvalidOperationException("the DNS server exited: " + _process.StandardError.ReadToEnd()),
                System.Globalization.CultureInfo.InvariantCulture);
            _endPoint = new IPEndPoint(IPAddress.Loopback, port);
            Resolver = NewResolver();
        }

        private readonly IPEndPoint _endPoint = null!;

        public DnsClientResolver Resolver { get; } = null!;

        /// <summary>A resolver with a cache of its own.</summary>
        public DnsClientResolver NewResolver() => new([_endPoint], TimeSpan.FromSeconds(1), retries: 0);

        /// <summary>How many questions about <paramref name="name"/> the server has been asked.</summary>
        public async Task<int> QueriesForAsync(string name)
        {
            var answer = await NewResolver().QueryTxtAsync("count-of." + name, CancellationToken.None);
            return int.Parse(Assert.Single(answer.Records), System.Globalization.CultureInfo.InvariantCulture);
        }

        public void Dispose()
        {
            if (_process is null)
                return;
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                _process.WaitForExit(5000);
            }
            _process.Dispose();
        }
    }
}

/// <summary>A fact that needs /usr/bin/python3 with dnslib for a loopback DNS server; skipped with the reason otherwise.</summary>
public sealed class LocalDnsFactAttribute : FactAttribute
{
    private static readonly Lazy<bool> IsAvailable = new(() =>
    {
        if (!File.Exists(PythonDkim.Python))
            return false;
        try
        {
            using var process = Process.Start(new ProcessStartInfo(PythonDkim.Python, ["-c", "import dnslib"]) { UseShellExecute = false, RedirectStandardError = true });
            return process is not null && process.WaitForExit(20_000) && process.ExitCode == 0;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return false;
        }
    });

    public LocalDnsFactAttribute()
    {
        if (!Available)
            Skip = "python3-dnslib is not installed (/usr/bin/python3 -c 'import dnslib' failed); it serves the loopback zone these DNS tests query.";
    }

    internal static bool Available => IsAvailable.Value;
}
