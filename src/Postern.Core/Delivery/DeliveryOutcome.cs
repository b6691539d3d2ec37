namespace Postern.Core.Delivery;

public enum RecipientOutcome
{
    Delivered,

    /// <summary>Try again later (4xx, no server reachable).</summary>
    Deferred,

    /// <summary>Will never work (5xx): bounce or record.</summary>
    Failed,
}

/// <summary>What happened to one recipient in one attempt, with the reply that says why.</summary>
public sealed record RecipientResult(string Recipient, RecipientOutcome Outcome, string Reply);

/// <summary>One server tried during an attempt, for the trace.</summary>
public sealed record ServerAttempt(string Server, RecipientOutcome Outcome, string Reply, IReadOnlyList<string> Recipients);

/// <summary>
/// The result of delivering one group of recipients: per recipient, and every server tried. <paramref name="Unreachable"/>
/// when no server got as far as a transaction (refused, timed out, no greeting, TLS failed): the destination is down.
/// </summary>
public sealed record DeliveryReport(IReadOnlyList<RecipientResult> Recipients, IReadOnlyList<ServerAttempt> Servers, bool Unreachable = false);
