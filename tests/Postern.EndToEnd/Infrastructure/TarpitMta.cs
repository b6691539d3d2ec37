using System.Net;
using System.Net.Sockets;

namespace Postern.EndToEnd.Infrastructure;

/// <summary>
/// A next hop that is hung: it accepts TCP connections on loopback and never sends a byte (no greeting),
/// holding every connection open until disposed. Counts what it accepted and what is open. With
/// <c>hangAfterData</c> it is the other common hang: it greets and accepts the envelope and DATA, takes the
/// message, and never answers its end.
/// </summary>
public sealed class TarpitMta : IAsyncDisposable
{
    private readonly TcpListener _listener;
    private readonly List<Socket> _held = [];
    private readonly bool _hangAfterData;
    private readonly Task _acceptLoop;
    private int _accepted;

    public TarpitMta(bool hangAfterData = false)
    {
        _hangAfterData = hangAfterData;
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
            if (_hangAfterData)
                _ = AnswerUntilDataEndsAsync(socket);
        }
    }

    /// <summary>Greets, says 250 to every command and 354 to DATA, reads the message, and then says nothing.</summary>
    private static async Task AnswerUntilDataEndsAsync(Socket socket)
    {
        try
        {
            var stream = new NetworkStream(socket, ownsSocket: false);
            var reader = new StreamReader(stream, System.Text.Encoding.ASCII);
            async Task SayAsync(string line) => await stream.WriteAsync(System.Text.Encoding.ASCII.GetBytes(line + "\r\n"));
            await SayAsync("220 tarpit.test ESMTP");
            while (await reader.ReadLineAsync() is { } command)
            {
                if (command.StartsWith("DATA", StringComparison.OrdinalIgnoreCase))
                {
                    await SayAsync("354 go ahead");
                    while (await reader.ReadLineAsync() is { } line && line != ".")
                    {
                    }
                    return; // the end of the message is never answered
                }
                await SayAsync(command.StartsWith("QUIT", StringComparison.OrdinalIgnoreCase) ? "221 bye" : "250 tarpit.test");
            }
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException)
        {
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
