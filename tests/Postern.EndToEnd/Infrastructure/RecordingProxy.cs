using System.Text;

namespace Postern.EndToEnd.Infrastructure;

/// <summary>A loopback proxy in front of a scanning engine (clamd, rspamd) that keeps every byte Postern sent it: what the engine received.</summary>
public sealed class RecordingProxy(int upstreamPort) : LoopbackProxy(upstreamPort)
{
    private readonly MemoryStream _received = new();
    private readonly List<MemoryStream> _connections = [];

    /// <summary>Everything clients sent through the proxy so far, all connections one after another, as Latin-1 text.</summary>
    public string Received
    {
        get
        {
            lock (_received)
                return Encoding.Latin1.GetString(_received.GetBuffer(), 0, (int)_received.Length);
        }
    }

    /// <summary>What clients sent, one array per connection in the order they were accepted (connections may overlap).</summary>
    public IReadOnlyList<byte[]> ReceivedByConnection
    {
        get
        {
            lock (_received)
                return _connections.Select(c => c.ToArray()).ToArray();
        }
    }

    protected override BytesObserver ObserveClientBytes()
    {
        var connection = new MemoryStream();
        lock (_received)
            _connections.Add(connection);
        return data =>
        {
            lock (_received)
            {
                _received.Write(data);
                connection.Write(data);
            }
        };
    }
}
