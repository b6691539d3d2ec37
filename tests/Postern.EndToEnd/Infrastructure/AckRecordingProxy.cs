using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;

namespace Postern.EndToEnd.Infrastructure;

/// <summary>
/// A loopback TCP proxy between an SMTP client and the server that records every
/// "250 ... queued as ID" reply it has forwarded to the client: exactly the messages the client
/// saw acknowledged, even when the client (smtp-source) cannot say which ones those were.
/// When either side closes or fails, the other side is closed too.
/// </summary>
public sealed partial class AckRecordingProxy : IAsyncDisposable
{
    private readonly TcpListener _listener;
    private readonly int _upstreamPort;
    private readonly CancellationTokenSource _stop = new();
    private readonly ConcurrentQueue<string> _acknowledged = new();
    private readonly ConcurrentDictionary<Task, byte> _connections = new();
    private readonly Task _acceptLoop;
    private int _connectionCount;

    public AckRecordingProxy(int upstreamPort)
    {
        _upstreamPort = upstreamPort;
        _listener = new TcpListener(IPAddress.Loopback, 0);
        _listener.Start(1024);
        Port = ((IPEndPoint)_listener.LocalEndpoint).Port;
        _acceptLoop = AcceptLoopAsync();
    }

    /// <summary>The port clients connect to.</summary>
    public int Port { get; }

    /// <summary>Queue ids of the acknowledgements forwarded to clients, in forwarding order.</summary>
    public IReadOnlyList<string> AcknowledgedQueueIds => _acknowledged.ToArray();

    public int AcknowledgedCount => _acknowledged.Count;

    public int ConnectionCount => Volatile.Read(ref _connectionCount);

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _listener.Stop();
        try
        {
            await _acceptLoop;
        }
        catch (Exception)
        {
            // Stopping the listener ends the accept loop with an exception.
        }
        await Task.WhenAll(_connections.Keys);
        _stop.Dispose();
    }

    private async Task AcceptLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await _listener.AcceptSocketAsync(_stop.Token);
            }
            catch (Exception) when (_stop.IsCancellationRequested)
            {
                return;
            }
            Interlocked.Increment(ref _connectionCount);
            var task = Task.Run(() => RelayAsync(client));
            _connections[task] = 0;
            _ = task.ContinueWith(t => _connections.TryRemove(t, out _), TaskScheduler.Default);
        }
    }

    private async Task RelayAsync(Socket client)
    {
        using var _ = client;
        using var upstream = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        using var session = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
        try
        {
            await upstream.ConnectAsync(new IPEndPoint(IPAddress.Loopback, _upstreamPort), session.Token);
        }
        catch (Exception)
        {
            return; // server down: the client sees the connection close
        }
        var toServer = PumpAsync(client, upstream, recordAcks: false, session);
        var toClient = PumpAsync(upstream, client, recordAcks: true, session);
        await Task.WhenAny(toServer, toClient);
        // One direction ended: close both so the other pump and the peers notice.
        session.Cancel();
        Shutdown(client);
        Shutdown(upstream);
        await Task.WhenAll(toServer, toClient);
    }

    private async Task PumpAsync(Socket from, Socket to, bool recordAcks, CancellationTokenSource session)
    {
        var buffer = new byte[16384];
        var line = new StringBuilder();
        try
        {
            while (true)
            {
                var n = await from.ReceiveAsync(buffer, SocketFlags.None, session.Token);
                if (n == 0)
                    return;
                await SendAllAsync(to, buffer.AsMemory(0, n), session.Token);
                if (recordAcks)
                    RecordAcknowledgements(buffer.AsSpan(0, n), line);
            }
        }
        catch (Exception)
        {
            // Reset, cancellation or the peer going away all end this direction.
        }
    }

    /// <summary>Scans forwarded reply bytes; only complete lines (CRLF seen) count.</summary>
    private void RecordAcknowledgements(ReadOnlySpan<byte> data, StringBuilder line)
    {
        foreach (var b in data)
        {
            if (b == (byte)'\n')
            {
                var match = QueuedAs().Match(line.ToString());
                if (match.Success)
                    _acknowledged.Enqueue(match.Groups[1].Value);
                line.Clear();
            }
            else if (line.Length < 1024)
            {
                line.Append((char)b);
            }
        }
    }

    private static async Task SendAllAsync(Socket socket, ReadOnlyMemory<byte> data, CancellationToken token)
    {
        while (!data.IsEmpty)
        {
            var sent = await socket.SendAsync(data, SocketFlags.None, token);
            data = data[sent..];
        }
    }

    private static void Shutdown(Socket socket)
    {
        try
        {
            socket.Shutdown(SocketShutdown.Both);
        }
        catch (Exception)
        {
            // Already closed.
        }
    }

    [GeneratedRegex(@"^250[ -].*queued as (\S+?)\r?$")]
    private static partial Regex QueuedAs();
}
