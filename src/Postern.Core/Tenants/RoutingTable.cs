namespace Postern.Core.Tenants;

/// <summary>
/// An immutable snapshot of every tenant and protected domain, read on each SMTP command without locks.
/// A new snapshot replaces the old one when the configuration changes.
/// </summary>
public sealed class RoutingTable
{
    private readonly Dictionary<string, ProtectedDomain> _domains;
    private readonly Dictionary<Guid, Tenant> _tenants;

    private readonly Dictionary<Guid, string[]> _domainsByTenant;
    private readonly IReadOnlyDictionary<Guid, IReadOnlyList<Policy.PolicyRule>> _rules;
    private readonly IReadOnlyDictionary<Guid, IReadOnlyList<string>> _vips;

    public RoutingTable(long generation, IEnumerable<Tenant> tenants, IEnumerable<ProtectedDomain> domains,
        IReadOnlyDictionary<Guid, IReadOnlyList<Policy.PolicyRule>>? rules = null, IReadOnlyDictionary<Guid, IReadOnlyList<string>>? vips = null)
    {
        Generation = generation;
        _tenants = tenants.ToDictionary(t => t.Id);
        _domains = domains.Where(d => _tenants.ContainsKey(d.TenantId)).ToDictionary(d => d.Domain, StringComparer.Ordinal);
        _domainsByTenant = _domains.Values.GroupBy(d => d.TenantId).ToDictionary(g => g.Key, g => g.Select(d => d.Domain).ToArray());
        _rules = rules ?? new Dictionary<Guid, IReadOnlyList<Policy.PolicyRule>>();
        _vips = vips ?? new Dictionary<Guid, IReadOnlyList<string>>();
    }

    /// <summary>The tenant's protected domains (normalised).</summary>
    public IReadOnlyList<string> DomainsOf(Guid tenantId) => _domainsByTenant.GetValueOrDefault(tenantId) ?? [];

    /// <summary>The tenant's own policy rules (the defaults are added by the evaluator).</summary>
    public IReadOnlyList<Policy.PolicyRule> RulesOf(Guid tenantId) => _rules.GetValueOrDefault(tenantId) ?? [];

    /// <summary>Display names of the tenant's VIPs, for impersonation checks.</summary>
    public IReadOnlyList<string> VipsOf(Guid tenantId) => _vips.GetValueOrDefault(tenantId) ?? [];

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
