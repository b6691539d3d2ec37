using System.Collections;
using System.Net;

namespace Postern.Smtp.Internal;

/// <summary>
/// Logging scope of a session: every log line written during it, the handler's included, carries the session id
/// and the client's endpoint as structured properties.
/// </summary>
internal sealed class SessionLogScope(string sessionId, IPEndPoint remoteEndPoint) : IReadOnlyList<KeyValuePair<string, object?>>
{
    public int Count => 2;

    public KeyValuePair<string, object?> this[int index] => index switch
    {
        0 => new("SessionId", sessionId),
        1 => new("RemoteEndPoint", remoteEndPoint),
        _ => throw new ArgumentOutOfRangeException(nameof(index)),
    };

    public IEnumerator<KeyValuePair<string, object?>> GetEnumerator()
    {
        yield return this[0];
        yield return this[1];
    }

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    public override string ToString() => $"SMTP session {sessionId} from {remoteEndPoint}";
}
