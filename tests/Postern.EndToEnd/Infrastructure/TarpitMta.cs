using System.Net;
using System.Net.Sockets;

namespace Postern.EndToEnd.Infrastructure;

/// <summary>
/// A next hop that is hung: it accepts TCP connections on loopback and never sends a byte (no greeting),
/// holding every connection open until disposed. Counts what it accepted and what is open.
/// </summary>
public sealed class TarpitMta : IAsyncDisposable
{
    private readonly TcpListener _listener;
    private readonly List<Socket> _held = [];
    private readonly Task _acceptLoop;
    private int _accepted;

    public TarpitMta()
    {
        _listener = new TcpListener(IPAddress.Loopback, 0);
        _listener.Start(1024);
        Port = ((IPEndPoint)_listener.LocalEndpoint).Port;
        _acceptLoop = AcceptLoopAsync();
    }

    public int Port { get; }

    /// <summary>Connections accepted so far.</summary>
    public int Accepted => Volatile.Read(ref _accepted);

    /// <summary>Connections the client has not closed yet.</summary>
    public int Open
    {
        get
        {
            lock (_held)
                return _held.Count(s => !(s.Poll(0, SelectMode.SelectRead) && s.Available == 0));
        }
    }

    private async Task AcceptLoopAsync()
    {
        while (true)
        {
            Socket socket;
            try
            {
                socket = await _listener.AcceptSocketAsync();
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                return;
            }
            lock (_held)
                _held.Add(socket);
            Interlocked.Increment(ref _accepted);
        }
    }

    public async ValueTask DisposeAsync()
    {
        _listener.Stop();
        await _acceptLoop;
        lock (_held)
        {
            foreach (var socket in _held)
                socket.Dispose();
            _held.Clear();
        }
    }
}
