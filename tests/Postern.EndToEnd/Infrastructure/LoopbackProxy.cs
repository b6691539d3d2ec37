using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;

namespace Postern.EndToEnd.Infrastructure;

/// <summary>
/// A loopback TCP proxy in front of a local server: bytes pass through unchanged, and when either side closes
/// or fails the other is closed too. It counts the connections made through it (and the most open at once);
/// subclasses watch what the server sends back.
/// </summary>
public abstract class LoopbackProxy : IAsyncDisposable
{
    private readonly TcpListener _listener;
    private readonly int _upstreamPort;
    private readonly CancellationTokenSource _stop = new();
    private readonly ConcurrentDictionary<Task, byte> _connections = new();
    private readonly Task _acceptLoop;
    private readonly object _gate = new();
    private int _accepted;
    private int _open;
    private int _peak;
    private readonly List<IPAddress> _clientAddresses = [];

    /// <summary>Listens on <paramref name="port"/> (0: any free port) and forwards to 127.0.0.1:<paramref name="upstreamPort"/>.</summary>
    protected LoopbackProxy(int upstreamPort, int port = 0)
    {
        _upstreamPort = upstreamPort;
        _listener = new TcpListener(IPAddress.Loopback, port);
        _listener.Start(1024);
        Port = ((IPEndPoint)_listener.LocalEndpoint).Port;
        _acceptLoop = AcceptLoopAsync();
    }

    /// <summary>Sees bytes on their way through the proxy, in order, one connection and direction at a time.</summary>
    protected delegate void BytesObserver(ReadOnlySpan<byte> data);

    /// <summary>The port the client connects to.</summary>
    public int Port { get; }

    /// <summary>Connections accepted so far.</summary>
    public int Accepted
    {
        get { lock (_gate) return _accepted; }
    }

    /// <summary>Connections open now.</summary>
    public int Open
    {
        get { lock (_gate) return _open; }
    }

    /// <summary>The most connections open at the same moment.</summary>
    public int Peak
    {
        get { lock (_gate) return _peak; }
    }

    /// <summary>The address each connection came from, in order.</summary>
    public IReadOnlyList<IPAddress> ClientAddresses
    {
        get { lock (_gate) return [.. _clientAddresses]; }
    }

    /// <summary>An observer for one new connection's server-to-client bytes; null to watch nothing.</summary>
    protected virtual BytesObserver? ObserveServerReplies() => null;

    /// <summary>An observer for one new connection's client-to-server bytes; null to watch nothing.</summary>
    protected virtual BytesObserver? ObserveClientBytes() => null;

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
        GC.SuppressFinalize(this);
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
            lock (_gate)
            {
                if (client.RemoteEndPoint is IPEndPoint remote)
                    _clientAddresses.Add(remote.Address);
                _accepted++;
                _open++;
                _peak = Math.Max(_peak, _open);
            }
            var task = Task.Run(() => RelayAsync(client));
            _connections[task] = 0;
            _ = task.ContinueWith(t => _connections.TryRemove(t, out _), TaskScheduler.Default);
        }
    }

    private async Task RelayAsync(Socket client)
    {
        try
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
            var toServer = PumpAsync(client, upstream, ObserveClientBytes(), session.Token);
            var toClient = PumpAsync(upstream, client, ObserveServerReplies(), session.Token);
            await Task.WhenAny(toServer, toClient);
            // One direction ended: close both so the other pump and the peers notice.
            session.Cancel();
            Shutdown(client);
            Shutdown(upstream);
            await Task.WhenAll(toServer, toClient);
        }
        finally
        {
            lock (_gate)
                _open--;
        }
    }

    private static async Task PumpAsync(Socket from, Socket to, BytesObserver? observer, CancellationToken token)
    {
        var buffer = new byte[16384];
        try
        {
            while (true)
            {
                var n = await from.ReceiveAsync(buffer, SocketFlags.None, token);
                if (n == 0)
                    return;
                var data = buffer.AsMemory(0, n);
                while (!data.IsEmpty)
                    data = data[await to.SendAsync(data, SocketFlags.None, token)..];
                observer?.Invoke(buffer.AsSpan(0, n));
            }
        }
        catch (Exception)
        {
            // Reset, cancellation or the peer going away all end this direction.
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
}
