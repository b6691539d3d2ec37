using Postern.Core.Spool;
using Postern.Smtp;

namespace Postern.Core.Scanning;

/// <summary>What the scanning stage decided for a message before it is acknowledged.</summary>
public sealed record ScanVerdict(ScanAction Action, string Reason, SmtpReply? Reply = null)
{
    public static ScanVerdict Deliver { get; } = new(ScanAction.Deliver, "not scanned");
}

public enum ScanAction
{
    Deliver,

    /// <summary>Refuse with <see cref="ScanVerdict.Reply"/> (5xx).</summary>
    Reject,

    /// <summary>Ask the client to try later with <see cref="ScanVerdict.Reply"/> (4xx), e.g. an engine is down.</summary>
    Defer,
}

/// <summary>The place in the relay where scanning happens: after authentication, before the message is spooled.</summary>
public interface IMessageScanner
{
    ValueTask<ScanVerdict> ScanAsync(Envelope envelope, MessageContent content, CancellationToken cancellationToken);
}

/// <summary>Passes every message; scanning engines replace it.</summary>
public sealed class PassThroughScanner : IMessageScanner
{
    public ValueTask<ScanVerdict> ScanAsync(Envelope envelope, MessageContent content, CancellationToken cancellationToken) =>
        ValueTask.FromResult(ScanVerdict.Deliver);
}
