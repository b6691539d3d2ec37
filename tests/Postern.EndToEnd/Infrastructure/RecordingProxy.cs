using System.Text;

namespace Postern.EndToEnd.Infrastructure;

/// <summary>A loopback proxy in front of a scanning engine (clamd, rspamd) that keeps every byte Postern sent it: what the engine received.</summary>
public sealed class RecordingProxy(int upstreamPort) : LoopbackProxy(upstreamPort)
{
    private readonly MemoryStream _received = new();

    /// <summary>Everything clients sent through the proxy so far, all connections one after another, as Latin-1 text.</summary>
    public string Received
    {
        get
        {
            lock (_received)
                return Encoding.Latin1.GetString(_received.GetBuffer(), 0, (int)_received.Length);
        }
    }

    protected override BytesObserver ObserveClientBytes() => data =>
    {
        lock (_received)
            _received.Write(data);
    };
}
