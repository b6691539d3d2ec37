using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Postern.ExoEmulator.MailFlow;

/// <summary>
/// The DNS that goes with the emulated service, authoritative and UDP only: each emulated tenant's accepted domains
/// have MX {domain with dashes}.mail.protection.outlook.com, every *.mail.protection.outlook.com name is the front
/// door's address, arcselector10001._domainkey.microsoft.com has the sealing key of the emulator's ARC sets, and
/// the TXT records it was given (`--dns-txt`) are there too.
/// Every other name is NXDOMAIN at once, so a relay pointed here never waits on a resolver that is not there.
/// </summary>
public sealed class EmulatorDns : IAsyncDisposable
{
    private const ushort TypeA = 1, TypeMx = 15, TypeTxt = 16;
    private readonly UdpClient _socket;
    private readonly ExoTransport _transport;
    private readonly CancellationTokenSource _stopping = new();
    private readonly Task _loop;

    private readonly IReadOnlyDictionary<string, string> _txt;

    private EmulatorDns(UdpClient socket, ExoTransport transport, IReadOnlyDictionary<string, string> txt)
    {
        _socket = socket;
        _transport = transport;
        _txt = txt.ToDictionary(p => p.Key.TrimEnd('.').ToLowerInvariant(), p => p.Value);
        _loop = Task.Run(ServeAsync);
    }

    public IPEndPoint EndPoint => (IPEndPoint)_socket.Client.LocalEndPoint!;

    /// <summary>Starts answering on <paramref name="endPoint"/>; <paramref name="txt"/> adds TXT records (a relay's published ARC key).</summary>
    public static EmulatorDns Start(ExoTransport transport, IPEndPoint endPoint, IReadOnlyDictionary<string, string>? txt = null) =>
        new(new UdpClient(endPoint), transport, txt ?? new Dictionary<string, string>());

    private async Task ServeAsync()
    {
        while (!_stopping.IsCancellationRequested)
        {
            UdpReceiveResult request;
            try
            {
                request = await _socket.ReceiveAsync(_stopping.Token);
            }
            catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException)
            {
                return;
            }
            catch (SocketException)
            {
                continue;
            }
            if (Answer(request.Buffer) is { } reply)
            {
                try
                {
                    await _socket.SendAsync(reply, request.RemoteEndPoint, _stopping.Token);
                }
                catch (Exception ex) when (ex is SocketException or OperationCanceledException or ObjectDisposedException)
                {
                }
            }
        }
    }

    /// <summary>The reply to one query, or null for what is not a well-formed query.</summary>
    internal byte[]? Answer(byte[] query)
    {
        if (query.Length < 12 || (query[2] & 0x80) != 0 || BinaryPrimitives.ReadUInt16BigEndian(query.AsSpan(4)) != 1)
            return null;
        var at = 12;
        var labels = new List<string>();
        while (at < query.Length && query[at] != 0)
        {
            var length = query[at];
            if (length > 63 || at + 1 + length > query.Length)
                return null;
            labels.Add(Encoding.ASCII.GetString(query, at + 1, length).ToLowerInvariant());
            at += 1 + length;
        }
        if (at + 5 > query.Length)
            return null;
        var type = BinaryPrimitives.ReadUInt16BigEndian(query.AsSpan(at + 1));
        var questionEnd = at + 5;
        var name = string.Join('.', labels);
        var (exists, records) = Lookup(name, type);

        var reply = new List<byte>(query.AsSpan(0, questionEnd).ToArray());
        reply[2] = (byte)(0x84 | (query[2] & 0x01)); // QR, AA, RD copied
        reply[3] = (byte)(exists ? 0 : 3);           // NOERROR / NXDOMAIN
        reply[6] = 0;
        reply[7] = (byte)records.Count;
        reply[8] = reply[9] = reply[10] = reply[11] = 0;
        foreach (var rdata in records)
        {
            reply.AddRange([0xC0, 0x0C]); // the name in the question
            reply.AddRange([(byte)(type >> 8), (byte)type, 0, 1, 0, 0, 0x01, 0x2C]); // class IN, TTL 300
            reply.AddRange([(byte)(rdata.Length >> 8), (byte)rdata.Length]);
            reply.AddRange(rdata);
        }
        return [.. reply];
    }

    private (bool Exists, List<byte[]> Records) Lookup(string name, ushort type)
    {
        var records = new List<byte[]>();
        if (_txt.TryGetValue(name, out var extra))
        {
            if (type == TypeTxt)
                records.Add(Txt(extra));
            return (true, records);
        }
        if (name == _transport.Arc.DnsName.ToLowerInvariant())
        {
            if (type == TypeTxt)
                records.Add(Txt(_transport.Arc.DnsRecord));
            return (true, records);
        }
        if (name.EndsWith(".mail.protection.outlook.com", StringComparison.Ordinal))
        {
            if (type == TypeA && _transport.FrontDoorEndPoint.Address.AddressFamily == AddressFamily.InterNetwork)
                records.Add(_transport.FrontDoorEndPoint.Address.GetAddressBytes());
            return (true, records);
        }
        if (_transport.TenantViews().Any(t => t.Accepts(name)))
        {
            if (type == TypeMx)
                records.Add([0, 0, .. Name($"{name.Replace('.', '-')}.mail.protection.outlook.com")]);
            return (true, records);
        }
        return (false, records);
    }

    private static byte[] Txt(string text)
    {
        var bytes = Encoding.ASCII.GetBytes(text);
        var rdata = new List<byte>();
        foreach (var chunk in bytes.Chunk(255))
        {
            rdata.Add((byte)chunk.Length);
            rdata.AddRange(chunk);
        }
        return [.. rdata];
    }

    private static byte[] Name(string name)
    {
        var bytes = new List<byte>();
        foreach (var label in name.Split('.'))
        {
            bytes.Add((byte)label.Length);
            bytes.AddRange(Encoding.ASCII.GetBytes(label));
        }
        bytes.Add(0);
        return [.. bytes];
    }

    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync();
        _socket.Dispose();
        await _loop.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
    }
}
