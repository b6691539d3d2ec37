using Postern.Core;

namespace Postern.M365.Blueprints;

/// <summary>What Postern creates in a tenant's Exchange Online (DESIGN §3).</summary>
public enum ProvisioningProfile
{
    /// <summary>Seeds 000–002: certificate-identified inbound connector, Loop Check and Redirect rules, ARC sealer, enhanced filtering.</summary>
    Integrated,

    /// <summary>Seed 003 (+ 004 outbound): IP-identified Partner connector, inbound and outbound rules keyed by the relay key, Defender allow entries.</summary>
    Relay,

    /// <summary>Seed 004: as <see cref="Relay"/>, with "your organization's email server" (OnPremises) connectors that retain internal headers.</summary>
    RelayLegacy,
}

public static class ProvisioningProfiles
{
    public static IReadOnlyList<string> Names { get; } = ["integrated", "relay", "relay-legacy"];

    public static string Format(ProvisioningProfile profile) => profile switch
    {
        ProvisioningProfile.Integrated => "integrated",
        ProvisioningProfile.Relay => "relay",
        ProvisioningProfile.RelayLegacy => "relay-legacy",
        _ => throw new ArgumentOutOfRangeException(nameof(profile)),
    };

    public static ProvisioningProfile Parse(string value) => value.Trim().ToLowerInvariant() switch
    {
        "integrated" => ProvisioningProfile.Integrated,
        "relay" => ProvisioningProfile.Relay,
        "relay-legacy" => ProvisioningProfile.RelayLegacy,
        _ => throw new PosternException($"'{value}' is not a profile ({string.Join(", ", Names)})"),
    };
}
