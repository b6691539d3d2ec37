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

    [JsonIgnore]
    public string Direction => Recipients.Any(r => r.Route != RecipientRoute.Tenant) ? "outbound" : "inbound";
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, UseStringEnumConverter = true)]
[JsonSerializable(typeof(Envelope))]
internal sealed partial class SpoolJsonContext : JsonSerializerContext;
