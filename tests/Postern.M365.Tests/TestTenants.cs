using Postern.Core.Tenants;
using Postern.M365.Blueprints;
using Postern.M365.Deployment;

namespace Postern.M365.Tests;

/// <summary>Fixed tenants and blueprints so scripts and plans are the same on every run.</summary>
internal static class TestTenants
{
    public static readonly Guid ContosoId = Guid.Parse("2f4a9c1e-7b3d-4e5f-8a6b-1c2d3e4f5a6b");

    public const string RelayKey = "pk_TestRelayKey0123456789abcdefghijklmnopqrstu";

    public static Tenant Contoso(string region = "eu", OutboundMode outbound = OutboundMode.Direct, bool createdBefore2023 = false, string? previousLoopToken = null) => new()
    {
        Id = ContosoId,
        Name = "contoso",
        Region = region,
        CreatedBefore2023 = createdBefore2023,
        Outbound = outbound,
        RelayKeyHash = Core.Tenants.RelayKey.Hash(RelayKey),
        LoopToken = "5c0ffee0a1b2c3d4e5f60718293a4b5c",
        PreviousLoopToken = previousLoopToken,
        CreatedAt = new DateTimeOffset(2025, 1, 2, 3, 4, 5, TimeSpan.Zero),
    };

    public static readonly IReadOnlyList<string> Domains = ["contoso.com", "contoso.net"];

    public static M365Deployment Deployment() => new M365Deployment().ApplyDefaults();

    public static Blueprint Blueprint(ProvisioningProfile profile, OutboundMode outbound = OutboundMode.Direct, string region = "eu",
        ProvisioningScope? scope = null, string? relayKey = RelayKey, Tenant? tenant = null) =>
        BlueprintBuilder.Build(new BlueprintRequest
        {
            Tenant = tenant ?? Contoso(region, outbound),
            Domains = Domains,
            Profile = profile,
            Outbound = outbound,
            Scope = scope ?? ProvisioningScope.AllUsers,
            RelayKey = relayKey,
        }, Deployment());
}
