using System.Net;
using System.Net.Sockets;

namespace Postern.EndToEnd.Infrastructure;

/// <summary>Loopback ports for the servers a test starts.</summary>
public static class FreePort
{
    /// <summary>A port nothing listens on right now: the kernel picks it when binding port 0.</summary>
    public static int Next()
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)socket.LocalEndPoint!).Port;
    }

    /// <summary>True when a TCP connection to 127.0.0.1:<paramref name="port"/> is accepted.</summary>
    public static bool Accepts(int port)
    {
        try
        {
            using var client = new TcpClient();
            client.Connect(IPAddress.Loopback, port);
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    public static Task WaitUntilAcceptingAsync(int port, TimeSpan timeout, string what, Func<string>? diagnostics = null)
        => Poll.UntilAsync(() => Accepts(port), timeout, $"{what} to accept on 127.0.0.1:{port}", diagnostics);
}
