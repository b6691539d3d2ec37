namespace Postern.Core.Tenants;

/// <summary>One Microsoft 365 organisation Postern relays for.</summary>
public sealed record Tenant
{
    /// <summary>The Entra tenant id; Postern's id for the tenant too.</summary>
    public required Guid Id { get; init; }
    public required string Name { get; init; }
    public required string Region { get; init; }
    public bool CreatedBefore2023 { get; init; }
    public OutboundMode Outbound { get; init; } = OutboundMode.Direct;

    /// <summary>SHA-256 of the current relay key; null while the relay is disabled.</summary>
    public byte[]? RelayKeyHash { get; init; }

    /// <summary>SHA-256 of the key replaced by the last rotation, accepted until <see cref="PreviousRelayKeyExpires"/>.</summary>
    public byte[]? PreviousRelayKeyHash { get; init; }
    public DateTimeOffset? PreviousRelayKeyExpires { get; init; }

    /// <summary>The secret value stamped in X-Postern-Loop on everything returned to Microsoft 365.</summary>
    public required string LoopToken { get; init; }

    /// <summary>During a rotation, the other token (the coming one, then the outgoing one): recognised as a loop, never stamped.</summary>
    public string? PreviousLoopToken { get; init; }

    public required DateTimeOffset CreatedAt { get; init; }

    public bool RelayEnabled => RelayKeyHash is not null;
}

/// <summary>A tenant's accepted domain and the servers its mail is delivered to (first, then fallbacks).</summary>
public sealed record ProtectedDomain(string Domain, Guid TenantId, IReadOnlyList<MtaAddress> Mtas);
