using System.Net;
using Microsoft.Extensions.Logging;

namespace Postern.Smtp;

/// <summary>
/// The SMTP server: accepts connections on each listener and runs one session per connection.
/// </summary>
public sealed class SmtpServer : IAsyncDisposable
{
    public SmtpServer(IReadOnlyList<SmtpListenerOptions> listeners, SmtpLimits limits, ISmtpTransactionHandler handler, ILoggerFactory loggerFactory)
    {
        throw new NotImplementedException();
    }

    /// <summary>The endpoints actually bound (port 0 in options becomes the real port), in listener order.</summary>
    public IReadOnlyList<IPEndPoint> BoundEndPoints => throw new NotImplementedException();

    /// <summary>Binds every listener and starts accepting. Throws when a port cannot be bound.</summary>
    public Task StartAsync(CancellationToken cancellationToken) => throw new NotImplementedException();

    /// <summary>Stops accepting; open sessions get 421 4.3.2 at their next command and are closed.</summary>
    public Task StopAsync(CancellationToken cancellationToken) => throw new NotImplementedException();

    public ValueTask DisposeAsync() => throw new NotImplementedException();
}
