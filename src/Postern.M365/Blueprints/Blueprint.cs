using Postern.Core.Tenants;
using Postern.M365.Deployment;

namespace Postern.M365.Blueprints;

/// <summary>
/// Everything Postern wants in one tenant's Exchange Online, in the order it must be made:
/// connectors before the rules that route to them, rules top to bottom, then Defender and
/// organisation settings and the checks. One blueprint feeds the script, the plan and apply.
/// </summary>
public sealed class Blueprint
{
    /// <summary>Stands for the relay key in a blueprint made without it; the script asks for the key at run time.</summary>
    public const string RelayKeyPlaceholder = "<relay key>";

    public required Tenant Tenant { get; init; }

    public required ProvisioningProfile Profile { get; init; }

    public required OutboundMode Outbound { get; init; }

    public required ProvisioningScope Scope { get; init; }

    public required RegionEndpoints Region { get; init; }

    public required M365Deployment Deployment { get; init; }

    /// <summary>The tenant's protected domains, as the rules and checks use them.</summary>
    public required IReadOnlyList<string> Domains { get; init; }

    public required IReadOnlyList<BlueprintItem> Items { get; init; }

    /// <summary>Things the admin should know before applying (one line each).</summary>
    public required IReadOnlyList<string> Warnings { get; init; }

    /// <summary>Steps outside Exchange Online (DNS): SPF.</summary>
    public required IReadOnlyList<string> Advice { get; init; }

    /// <summary>False when made without the relay key: the rules then carry <see cref="RelayKeyPlaceholder"/>.</summary>
    public required bool HasRelayKey { get; init; }

    /// <summary>The loop tokens the Loop Check rule matches: the current one, and the previous one during a rotation.</summary>
    public required IReadOnlyList<string> LoopTokens { get; init; }

    public IReadOnlyList<ConnectorItem> Connectors => Items.OfType<ConnectorItem>().ToArray();

    /// <summary>Postern's rules from top (evaluated first) to bottom.</summary>
    public IReadOnlyList<TransportRuleItem> Rules => Items.OfType<TransportRuleItem>().ToArray();

    /// <summary>Every connector name Postern uses in any profile: what "remove" deletes and "plan" cleans up after a profile change.</summary>
    public required IReadOnlyList<string> AllConnectorNames { get; init; }

    /// <summary>Every rule name Postern uses in any profile.</summary>
    public required IReadOnlyList<string> AllRuleNames { get; init; }

    public string Describe() =>
        $"tenant '{Tenant.Name}' ({Tenant.Id}), profile {ProvisioningProfiles.Format(Profile)}, region {Region.Region}, " +
        $"outbound {OutboundModes.Format(Outbound)}, {Scope.Describe()}";
}
