using Postern.M365.Client;
using Postern.M365.Exo;

namespace Postern.M365.Reconcile;

/// <summary>What a tenant's Exchange Online has now, of the things Postern makes or checks.</summary>
public sealed class TenantState
{
    public required IReadOnlyList<ExoObject> InboundConnectors { get; init; }

    public required IReadOnlyList<ExoObject> OutboundConnectors { get; init; }

    /// <summary>Every transport rule, top (priority 0) to bottom.</summary>
    public required IReadOnlyList<ExoObject> TransportRules { get; init; }

    public required IReadOnlyList<string> ArcTrustedSealers { get; init; }

    public required IReadOnlyList<string> IpAllowList { get; init; }

    public required IReadOnlyList<ExoObject> SpoofItems { get; init; }

    public required ExoObject? DefaultRemoteDomain { get; init; }

    public required IReadOnlyList<ExoObject> AcceptedDomains { get; init; }

    /// <summary>The cmdlets that read the state, in the order they run.</summary>
    public static IReadOnlyList<CmdletInvocation> Reads { get; } =
    [
        new("Get-InboundConnector"),
        new("Get-OutboundConnector"),
        new("Get-TransportRule"),
        new("Get-ArcConfig"),
        new("Get-HostedConnectionFilterPolicy", ("Identity", "Default")),
        new("Get-TenantAllowBlockListSpoofItems", ("Identity", "Default")),
        new("Get-RemoteDomain", ("Identity", "Default")),
        new("Get-AcceptedDomain"),
    ];

    public static async Task<TenantState> ReadAsync(IExchangeOnline exchange, CancellationToken cancellationToken)
    {
        var results = new List<IReadOnlyList<ExoObject>>();
        // One after the other: Exchange Online limits concurrent requests per tenant.
        foreach (var read in Reads)
            results.Add(await exchange.InvokeAsync(read, cancellationToken).ConfigureAwait(false));
        return new TenantState
        {
            InboundConnectors = results[0],
            OutboundConnectors = results[1],
            TransportRules = results[2].OrderBy(r => r.GetInt("Priority") ?? int.MaxValue).ToArray(),
            ArcTrustedSealers = SplitSealers(results[3].FirstOrDefault()),
            IpAllowList = results[4].FirstOrDefault()?.GetList("IPAllowList") ?? [],
            SpoofItems = results[5],
            DefaultRemoteDomain = results[6].FirstOrDefault(),
            AcceptedDomains = results[7],
        };
    }

    public ExoObject? InboundConnector(string name) => InboundConnectors.FirstOrDefault(c => Same(c.Name, name));

    public ExoObject? OutboundConnector(string name) => OutboundConnectors.FirstOrDefault(c => Same(c.Name, name));

    public ExoObject? Rule(string name) => TransportRules.FirstOrDefault(r => Same(r.Name, name));

    /// <summary>The spoof entry for the same pair and type, whatever its action.</summary>
    public ExoObject? SpoofItem(string spoofType, string spoofedUser, string sendingInfrastructure) =>
        SpoofItems.FirstOrDefault(i => Same(i.GetString("SpoofType"), spoofType) && Same(i.GetString("SpoofedUser"), spoofedUser)
            && Same(i.GetString("SendingInfrastructure"), sendingInfrastructure));

    /// <summary>The identity Set-/Remove-TenantAllowBlockListSpoofItems -Ids takes.</summary>
    public static string SpoofId(ExoObject item) =>
        item.GetString("Identity") is { Length: > 0 } identity ? identity.Split('\\').Last() : item.GetString("ObjectId") ?? item.Name;

    internal static bool Same(string? a, string? b) => string.Equals(a?.Trim(), b?.Trim(), StringComparison.OrdinalIgnoreCase);

    /// <summary>Get-ArcConfig gives the sealers as one comma-separated string (or a list).</summary>
    private static IReadOnlyList<string> SplitSealers(ExoObject? config) =>
        config is null
            ? []
            : config.GetList("ArcTrustedSealers").SelectMany(s => s.Split(',')).Select(s => s.Trim()).Where(s => s.Length > 0).ToArray();
}
