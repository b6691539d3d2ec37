using System.Net;
using System.Net.Sockets;

namespace Postern.Core.Authentication;

/// <summary>
/// A DNS zone held in memory, for tests and offline tools: names answer with the records added, unknown
/// names are NXDOMAIN, CNAMEs are followed, and a name can be made to time out. It records every
/// question so tests can check lookup limits.
/// </summary>
public sealed class InMemoryDnsResolver : IDnsResolver
{
    private const int MaxCnameHops = 10;

    private readonly Lock _lock = new();
    private readonly Dictionary<string, NameEntry> _names = new(StringComparer.OrdinalIgnoreCase);
    private readonly List<string> _queries = [];

    /// <summary>Every question asked so far, as "TYPE name".</summary>
    public IReadOnlyList<string> Queries
    {
        get
        {
            lock (_lock)
                return _queries.ToArray();
        }
    }

    public InMemoryDnsResolver AddTxt(string name, string text) => Add(name, RecordKind.Txt, text);

    public InMemoryDnsResolver AddAddress(string name, IPAddress address) =>
        Add(name, address.AddressFamily == AddressFamily.InterNetworkV6 ? RecordKind.Aaaa : RecordKind.A, address);

    public InMemoryDnsResolver AddAddress(string name, string address) => AddAddress(name, IPAddress.Parse(address));

    public InMemoryDnsResolver AddMx(string name, int preference, string exchange) =>
        Add(name, RecordKind.Mx, new MxHost(preference, exchange.TrimEnd('.')));

    /// <summary>A PTR record at <paramref name="reverseName"/> (e.g. "4.3.2.1.in-addr.arpa").</summary>
    public InMemoryDnsResolver AddPtr(string reverseName, string target) => Add(reverseName, RecordKind.Ptr, target.TrimEnd('.'));

    public InMemoryDnsResolver AddPtr(IPAddress address, string target) => AddPtr(ReverseDnsName.For(address), target);

    public InMemoryDnsResolver AddCname(string name, string target) => Add(name, RecordKind.Cname, target.TrimEnd('.'));

    /// <summary>Makes <paramref name="name"/> exist with no records at all (NOERROR, empty answers).</summary>
    public InMemoryDnsResolver AddEmptyName(string name)
    {
        lock (_lock)
            Entry(name);
        return this;
    }

    /// <summary>Questions about <paramref name="name"/> for types it has no records of time out.</summary>
    public InMemoryDnsResolver AddTimeout(string name)
    {
        lock (_lock)
            Entry(name).TimesOut = true;
        return this;
    }

    public Task<DnsAnswer<string>> QueryTxtAsync(string name, CancellationToken cancellationToken) =>
        Task.FromResult(Query<string>(name, RecordKind.Txt));

    public Task<DnsAnswer<IPAddress>> QueryAddressesAsync(string name, AddressFamily family, CancellationToken cancellationToken) =>
        Task.FromResult(Query<IPAddress>(name, family == AddressFamily.InterNetworkV6 ? RecordKind.Aaaa : RecordKind.A));

    public Task<DnsAnswer<MxHost>> QueryMxAsync(string name, CancellationToken cancellationToken) =>
        Task.FromResult(Query<MxHost>(name, RecordKind.Mx));

    public Task<DnsAnswer<string>> QueryPtrAsync(IPAddress address, CancellationToken cancellationToken) =>
        Task.FromResult(Query<string>(ReverseDnsName.For(address), RecordKind.Ptr));

    private InMemoryDnsResolver Add(string name, RecordKind kind, object value)
    {
        lock (_lock)
            Entry(name).Records.Add((kind, value));
        return this;
    }

    private NameEntry Entry(string name)
    {
        name = Normalize(name);
        if (!_names.TryGetValue(name, out var entry))
            _names[name] = entry = new NameEntry();
        return entry;
    }

    private DnsAnswer<T> Query<T>(string name, RecordKind kind)
    {
        lock (_lock)
        {
            _queries.Add($"{kind.ToString().ToUpperInvariant()} {name}");
            var current = Normalize(name);
            var seen = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
            for (var hop = 0; hop <= MaxCnameHops; hop++)
            {
                if (!_names.TryGetValue(current, out var entry))
                    return hop == 0 ? DnsAnswer<T>.NonExistent : DnsAnswer<T>.NoData;
                var records = entry.Records.Where(r => r.Kind == kind).Select(r => (T)r.Value).ToArray();
                if (records.Length > 0)
                    return DnsAnswer<T>.Found(records);
                var cname = entry.Records.FirstOrDefault(r => r.Kind == RecordKind.Cname);
                if (cname.Value is string target && kind != RecordKind.Cname)
                {
                    if (!seen.Add(current))
                        return DnsAnswer<T>.NoData;
                    current = Normalize(target);
                    continue;
                }
                return entry.TimesOut
                    ? DnsAnswer<T>.Failed(DnsLookupStatus.Timeout, $"{kind} {name}: no answer in time")
                    : DnsAnswer<T>.NoData;
            }
            return DnsAnswer<T>.NoData;
        }
    }

    private static string Normalize(string name) => name.TrimEnd('.').ToLowerInvariant();

    private enum RecordKind
    {
        A,
        Aaaa,
        Mx,
        Ptr,
        Txt,
        Cname,
    }

    private sealed class NameEntry
    {
        public List<(RecordKind Kind, object Value)> Records { get; } = [];

        public bool TimesOut { get; set; }
    }
}
