using Postern.Core.Spool;

namespace Postern.Core.Trace;

/// <summary>Something that happened to a message, written to the trace in batches.</summary>
public abstract record TraceEvent(string QueueId, DateTimeOffset At);

/// <summary>A message was accepted (queued) or refused at the end of DATA.</summary>
public sealed record MessageReceived(Envelope Envelope, long Size, string State, string Reason, string? Verdict = null, IReadOnlyList<Scanning.Finding>? Findings = null)
    : TraceEvent(Envelope.QueueId, Envelope.ReceivedAt);

/// <summary>One delivery attempt to one server for some recipients.</summary>
public sealed record DeliveryAttempted(string QueueId, DateTimeOffset At, string Server, IReadOnlyList<string> Recipients, string Outcome, string Reply)
    : TraceEvent(QueueId, At);

/// <summary>The message's state changed (deferred, delivered, failed, expired …).</summary>
public sealed record MessageStateChanged(string QueueId, DateTimeOffset At, string State, string Reason, DateTimeOffset? NextAttemptAt = null)
    : TraceEvent(QueueId, At);

/// <summary>Message states as shown in the trace and the queue.</summary>
public static class MessageStates
{
    public const string Queued = "queued";
    public const string Deferred = "deferred";
    public const string Delivered = "delivered";
    public const string Failed = "failed";
    public const string Refused = "refused";
    public const string PartlyFailed = "partly-failed";
    public const string Quarantined = "quarantined";

    public static bool IsInQueue(string state) => state is Queued or Deferred;
}
