using System.Text.Json.Serialization;

namespace Postern.Core.Spool;

/// <summary>Where one recipient's copy goes.</summary>
public enum RecipientRoute
{
    /// <summary>To the tenant's MTAs for the recipient's domain (back to Microsoft 365), with the loop token.</summary>
    Tenant,

    /// <summary>To the recipient domain's MX, directly.</summary>
    Mx,

    /// <summary>Back to Microsoft 365 through the sender domain's MTAs, which sends it on.</summary>
    ViaM365,
}

/// <summary>One recipient of a spooled message and how it is routed.</summary>
public sealed record EnvelopeRecipient(string Address, RecipientRoute Route)
{
    [JsonIgnore]
    public string Domain => Address[(Address.LastIndexOf('@') + 1)..];
}

/// <summary>
/// Everything Postern knows about a message besides its content; written to the spool with it.
/// </summary>
public sealed record Envelope
{
    public required string QueueId { get; init; }
    public required DateTimeOffset ReceivedAt { get; init; }
    public required Guid TenantId { get; init; }
    public required string MailFrom { get; init; }
    public required IReadOnlyList<EnvelopeRecipient> Recipients { get; init; }
    public required string Client { get; init; }
    public string? HeloName { get; init; }
    public string? Subject { get; init; }
    public string? MessageId { get; init; }
    public bool SmtpUtf8 { get; init; }

    /// <summary>Set on delivery status notifications Postern made itself (never bounced again).</summary>
    public bool IsBounce { get; init; }

    /// <summary>
    /// Set on a dispatch record: a message whose recipients got different verdicts, stored once before the 250 and
    /// split into its parts (copies, quarantine, DSNs) after it. Never delivered itself.
    /// </summary>
    public DispatchPlan? Dispatch { get; init; }

    [JsonIgnore]
    public string Direction => Recipients.Any(r => r.Route != RecipientRoute.Tenant) ? "outbound" : "inbound";
}

/// <summary>
/// How a dispatch record splits into its parts. <see cref="StampAt"/> is the length of Postern's trace fields (Received,
/// engine annotations) at the top of the stored header section: each part's verdict fields go right after them.
/// </summary>
public sealed record DispatchPlan(int StampAt, IReadOnlyList<DispatchPart> Parts);

/// <summary>
/// One part of a dispatch record: the recipients (indexes into the record's envelope) that share a verdict, and the
/// queue ids its results get, chosen before the 250 so that redoing a part after a crash finds what was already done.
/// </summary>
public sealed record DispatchPart(string QueueId, IReadOnlyList<int> Recipients, Policy.VerdictAction Action, string Rule, string Reason,
    string? SubjectTag = null, string? BounceQueueId = null)
{
    public Policy.Verdict Verdict => new(Action, Rule, Reason, SubjectTag);
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, UseStringEnumConverter = true)]
[JsonSerializable(typeof(Envelope))]
internal sealed partial class SpoolJsonContext : JsonSerializerContext;
