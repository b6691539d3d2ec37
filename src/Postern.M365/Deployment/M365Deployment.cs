using System.Net;
using System.Net.Sockets;
using Postern.Core.Tenants;

namespace Postern.M365.Deployment;

/// <summary>
/// The operator's settings that the Exchange Online items are made from (configuration section
/// "Postern", the same one the relay reads): product domain, header prefix, and per region the
/// smart host, certificate subject and egress addresses Postern delivers back to Microsoft 365 from.
/// </summary>
public sealed class M365Deployment
{
    public const string Section = "Postern";

    /// <summary>Product domain; region host names, certificate subjects and the ARC sealer derive from it.</summary>
    public string ProductDomain { get; set; } = "postern.example";

    /// <summary>Header prefix: the rules set {prefix}Key and match {prefix}Loop.</summary>
    public string HeaderPrefix { get; set; } = "X-Postern-";

    /// <summary>Prefix of the connector and rule names, so an admin sees whose items they are.</summary>
    public string ItemPrefix { get; set; } = "Postern";

    /// <summary>
    /// The relay's signing settings; Signing:ArcDomain is the d= of Postern's ARC seals (default
    /// arc.{ProductDomain}), the same setting the relay seals with, so the trusted sealer always matches.
    /// </summary>
    public SigningDeployment Signing { get; set; } = new();

    /// <summary>Per region (au, eu, us): egress addresses and, optionally, a different smart host or certificate subject.</summary>
    public Dictionary<string, RegionDeployment> Regions { get; set; } = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>
    /// Documentation-range addresses (RFC 5737, RFC 3849) used until the operator configures
    /// Postern:Regions:{region}:EgressIPs: they make scripts and tests concrete without pointing at anyone's server.
    /// </summary>
    public static readonly IReadOnlyDictionary<string, IReadOnlyList<string>> DefaultEgressIPs = new Dictionary<string, IReadOnlyList<string>>
    {
        ["au"] = ["192.0.2.25", "192.0.2.26", "2001:db8:0:a::25"],
        ["eu"] = ["198.51.100.25", "198.51.100.26", "2001:db8:0:e::25"],
        ["us"] = ["203.0.113.25", "203.0.113.26", "2001:db8:0:5::25"],
    };

    public string KeyHeader => HeaderPrefix + "Key";

    public string LoopHeader => HeaderPrefix + "Loop";

    public string ArcSealerDomain => string.IsNullOrWhiteSpace(Signing.ArcDomain) ? $"arc.{ProductDomain}" : Signing.ArcDomain.Trim();

    /// <summary>Fills what the configuration left empty (the binder appends to lists, so defaults go in after binding).</summary>
    public M365Deployment ApplyDefaults()
    {
        foreach (var region in Region.All)
        {
            if (!Regions.TryGetValue(region, out var settings))
                Regions[region] = settings = new RegionDeployment();
            if (settings.EgressIPs.Count == 0)
                settings.EgressIPs.AddRange(DefaultEgressIPs[region]);
        }
        return this;
    }

    /// <summary>Problems that must stop the command, each one line naming the setting.</summary>
    public IEnumerable<string> Validate()
    {
        if (Core.Tenants.DomainName.Normalize(ProductDomain) is null)
            yield return $"{Section}:ProductDomain '{ProductDomain}' is not a domain name";
        if (string.IsNullOrWhiteSpace(HeaderPrefix) || HeaderPrefix.Any(c => c <= ' ' || c == ':' || c > '~'))
            yield return $"{Section}:HeaderPrefix '{HeaderPrefix}' is not the start of a header field name";
        if (string.IsNullOrWhiteSpace(ItemPrefix) || ItemPrefix.Length > 40)
            yield return $"{Section}:ItemPrefix '{ItemPrefix}' must be 1 to 40 characters";
        if (Core.Tenants.DomainName.Normalize(ArcSealerDomain) is null)
            yield return $"{Section}:Signing:ArcDomain '{ArcSealerDomain}' is not a domain name";
        foreach (var (region, settings) in Regions)
        {
            if (!Region.IsKnown(region))
            {
                yield return $"{Section}:Regions:{region} is not a region ({string.Join(", ", Region.All)})";
                continue;
            }
            for (var i = 0; i < settings.EgressIPs.Count; i++)
            {
                if (!IPAddress.TryParse(settings.EgressIPs[i], out _) || settings.EgressIPs[i].Contains('/'))
                    yield return $"{Section}:Regions:{region}:EgressIPs:{i} '{settings.EgressIPs[i]}' is not an IP address";
            }
            if (!settings.EgressIPs.Any(ip => IPAddress.TryParse(ip, out var a) && a.AddressFamily == AddressFamily.InterNetwork))
                yield return $"{Section}:Regions:{region}:EgressIPs lists no IPv4 address (Exchange Online's IP-based connectors and allow lists take IPv4 only)";
            for (var i = 0; i < settings.SmartHosts.Count; i++)
            {
                if (Core.Tenants.DomainName.Normalize(settings.SmartHosts[i]) is null)
                    yield return $"{Section}:Regions:{region}:SmartHosts:{i} '{settings.SmartHosts[i]}' is not a host name";
            }
            if (settings.PtrDomain is { } ptr && Core.Tenants.DomainName.Normalize(ptr.TrimEnd('.')) is null)
                yield return $"{Section}:Regions:{region}:PtrDomain '{ptr}' is not a domain name";
        }
    }

    /// <summary>The resolved settings of one region.</summary>
    public RegionEndpoints For(string region)
    {
        if (!Region.IsKnown(region))
            throw new Core.PosternException($"'{region}' is not a region ({string.Join(", ", Region.All)})");
        var settings = Regions.GetValueOrDefault(region) ?? new RegionDeployment();
        var ips = (settings.EgressIPs.Count > 0 ? settings.EgressIPs : DefaultEgressIPs[region])
            .Select(IPAddress.Parse).Distinct().ToArray();
        return new RegionEndpoints(
            region,
            settings.SmartHosts.Count > 0
                ? settings.SmartHosts.Select(h => Core.Tenants.DomainName.Normalize(h) ?? h).Distinct(StringComparer.OrdinalIgnoreCase).ToArray()
                : [$"m365-array-1.{region}.{ProductDomain}", $"m365-array-2.{region}.{ProductDomain}"],
            settings.CertificateSubject ?? $"*.{region}.{ProductDomain}",
            ips.Where(a => a.AddressFamily == AddressFamily.InterNetwork).ToArray(),
            ips.Where(a => a.AddressFamily == AddressFamily.InterNetworkV6).ToArray())
        {
            PtrDomain = settings.PtrDomain is { } ptr ? Core.Tenants.DomainName.Normalize(ptr.TrimEnd('.')) : null,
        };
    }
}

/// <summary>The part of Postern:Signing the Exchange Online items depend on.</summary>
public sealed class SigningDeployment
{
    /// <summary>Postern:Signing:ArcDomain; empty means arc.{ProductDomain}.</summary>
    public string? ArcDomain { get; set; }
}

/// <summary>Configuration of one region (Postern:Regions:{region}).</summary>
public sealed class RegionDeployment
{
    /// <summary>Addresses Postern sends from, IPv4 and IPv6 (Postern:Regions:{region}:EgressIPs).</summary>
    public List<string> EgressIPs { get; set; } = [];

    /// <summary>
    /// The host names Exchange Online delivers this region's mail to Postern at, all of them in the outbound
    /// connector's SmartHosts (default m365-array-1 and m365-array-2.{region}.{ProductDomain}). One alone is a single
    /// point of failure for every tenant's mail: Exchange Online queues for 24 hours, then returns it to the sender.
    /// </summary>
    public List<string> SmartHosts { get; set; } = [];

    /// <summary>Default *.{region}.{ProductDomain}.</summary>
    public string? CertificateSubject { get; set; }

    /// <summary>
    /// The domain the PTR records of the egress addresses end in (mta1.eu.postern.example → eu.postern.example), when
    /// they have them: spoof allow entries then name it instead of each address's /24.
    /// </summary>
    public string? PtrDomain { get; set; }
}

/// <summary>One region as Exchange Online sees it.</summary>
public sealed record RegionEndpoints(
    string Region,
    IReadOnlyList<string> SmartHosts,
    string CertificateSubject,
    IReadOnlyList<IPAddress> EgressIPv4,
    IReadOnlyList<IPAddress> EgressIPv6)
{
    public IEnumerable<IPAddress> EgressIPs => EgressIPv4.Concat(EgressIPv6);

    /// <summary>The egress addresses' PTR domain (<see cref="RegionDeployment.PtrDomain"/>), if configured.</summary>
    public string? PtrDomain { get; init; }
}
