namespace Postern.Core.Tenants;

/// <summary>
/// An immutable snapshot of every tenant and protected domain, read on each SMTP command without locks.
/// A new snapshot replaces the old one when the configuration changes.
/// </summary>
public sealed class RoutingTable
{
    private readonly Dictionary<string, ProtectedDomain> _domains;
    private readonly Dictionary<Guid, Tenant> _tenants;

    public RoutingTable(long generation, IEnumerable<Tenant> tenants, IEnumerable<ProtectedDomain> domains)
    {
        Generation = generation;
        _tenants = tenants.ToDictionary(t => t.Id);
        _domains = domains.Where(d => _tenants.ContainsKey(d.TenantId)).ToDictionary(d => d.Domain, StringComparer.Ordinal);
    }

    public static RoutingTable Empty { get; } = new(0, [], []);

    public long Generation { get; }

    public IEnumerable<Tenant> Tenants => _tenants.Values;

    /// <summary>The protected domain with exactly this normalised name (see <see cref="DomainName.Normalize"/>).</summary>
    public ProtectedDomain? FindDomain(string normalizedDomain) =>
        _domains.GetValueOrDefault(normalizedDomain);

    public Tenant? FindTenant(Guid id) => _tenants.GetValueOrDefault(id);

    /// <summary>The tenant owning the normalised domain, if any.</summary>
    public Tenant? OwnerOf(string normalizedDomain) =>
        _domains.TryGetValue(normalizedDomain, out var domain) ? _tenants.GetValueOrDefault(domain.TenantId) : null;
}
