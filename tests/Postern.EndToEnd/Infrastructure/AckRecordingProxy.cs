using System.Collections.Concurrent;
using System.Text;
using System.Text.RegularExpressions;

namespace Postern.EndToEnd.Infrastructure;

/// <summary>
/// A loopback TCP proxy between an SMTP client and the server that records every
/// "250 ... queued as ID" reply it has forwarded to the client: exactly the messages the client
/// saw acknowledged, even when the client (smtp-source) cannot say which ones those were.
/// </summary>
public sealed partial class AckRecordingProxy(int upstreamPort) : LoopbackProxy(upstreamPort)
{
    private readonly ConcurrentQueue<string> _acknowledged = new();

    /// <summary>Queue ids of the acknowledgements forwarded to clients, in forwarding order.</summary>
    public IReadOnlyList<string> AcknowledgedQueueIds => _acknowledged.ToArray();

    public int AcknowledgedCount => _acknowledged.Count;

    public int ConnectionCount => Accepted;

    /// <summary>Scans forwarded reply bytes; only complete lines (LF seen) count.</summary>
    protected override BytesObserver ObserveServerReplies()
    {
        var line = new StringBuilder();
        return data =>
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
        };
    }

    [GeneratedRegex(@"^250[ -].*queued as (\S+?)\r?$")]
    private static partial Regex QueuedAs();
}
