using System.Net;
using Microsoft.Extensions.Logging;

namespace Postern.Smtp.Internal;

/// <summary>Every log line of the SMTP layer. Envelope addresses, header values and content never appear here.</summary>
internal static partial class Log
{
    [LoggerMessage(1, LogLevel.Information, "SMTP listener {Listener} listening on {EndPoint}")]
    public static partial void Listening(ILogger logger, string listener, IPEndPoint endPoint);

    [LoggerMessage(2, LogLevel.Debug, "Session {SessionId} started: {RemoteEndPoint} on listener {Listener}")]
    public static partial void SessionStarted(ILogger logger, string sessionId, IPEndPoint remoteEndPoint, string listener);

    [LoggerMessage(3, LogLevel.Debug, "Session {SessionId} ended ({Reason}) after {DurationMs} ms; {Messages} messages accepted")]
    public static partial void SessionEnded(ILogger logger, string sessionId, string reason, long durationMs, int messages);

    [LoggerMessage(4, LogLevel.Information, "Refused connection from {RemoteEndPoint} on listener {Listener}: {Reason}")]
    public static partial void ConnectionRefused(ILogger logger, IPEndPoint remoteEndPoint, string listener, string reason);

    [LoggerMessage(5, LogLevel.Debug, "Session {SessionId} TLS established: {Protocol} {Cipher}, client certificate {ClientCertificate}")]
    public static partial void TlsEstablished(ILogger logger, string sessionId, string protocol, string cipher, string clientCertificate);

    [LoggerMessage(6, LogLevel.Information, "Session {SessionId} from {RemoteEndPoint}: TLS handshake failed: {Error}")]
    public static partial void TlsHandshakeFailed(ILogger logger, string sessionId, IPEndPoint remoteEndPoint, string error);

    [LoggerMessage(7, LogLevel.Warning, "Session {SessionId} from {RemoteEndPoint}: discarded {Bytes} bytes pipelined after STARTTLS (command injection attempt, CVE-2011-0411)")]
    public static partial void DiscardedAfterStartTls(ILogger logger, string sessionId, IPEndPoint remoteEndPoint, long bytes);

    [LoggerMessage(8, LogLevel.Error, "Session {SessionId}: transaction handler failed in {Stage}; replied 451")]
    public static partial void HandlerFailed(ILogger logger, Exception exception, string sessionId, string stage);

    [LoggerMessage(9, LogLevel.Debug, "Session {SessionId}: connection lost: {Error}")]
    public static partial void ConnectionLost(ILogger logger, string sessionId, string error);

    [LoggerMessage(10, LogLevel.Error, "Session {SessionId} from {RemoteEndPoint} failed unexpectedly")]
    public static partial void SessionFailed(ILogger logger, Exception exception, string sessionId, IPEndPoint remoteEndPoint);

    [LoggerMessage(11, LogLevel.Information, "Session {SessionId} from {RemoteEndPoint} closed by the server: {Reason}")]
    public static partial void SessionClosedByServer(ILogger logger, string sessionId, IPEndPoint remoteEndPoint, string reason);

    [LoggerMessage(12, LogLevel.Warning, "Accepting on listener {Listener} failed")]
    public static partial void AcceptFailed(ILogger logger, Exception exception, string listener);

    [LoggerMessage(13, LogLevel.Information, "Session {SessionId}: message refused during its content: {Reason}")]
    public static partial void ContentRefused(ILogger logger, string sessionId, string reason);

    [LoggerMessage(14, LogLevel.Warning, "Session {SessionId}: message writer failed to dispose")]
    public static partial void WriterDisposeFailed(ILogger logger, Exception exception, string sessionId);

    [LoggerMessage(15, LogLevel.Information, "SMTP server stopping; {Sessions} sessions open")]
    public static partial void Stopping(ILogger logger, int sessions);

    [LoggerMessage(16, LogLevel.Warning, "SMTP server stop deadline reached; aborting {Sessions} sessions")]
    public static partial void AbortingSessions(ILogger logger, int sessions);
}
