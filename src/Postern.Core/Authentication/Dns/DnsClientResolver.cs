using System.Net;
using System.Net.Sockets;
using DnsClient;
using DnsClient.Protocol;
using Postern.Core.Configuration;

namespace Postern.Core.Authentication;

/// <summary>
/// <see cref="IDnsResolver"/> over DnsClient: the configured servers (or the system's), answers cached for
/// their TTL, and every failure turned into a <see cref="DnsLookupStatus"/> so that a slow or broken DNS
/// server becomes a temporary error in a result instead of an exception in the scanning pipeline.
/// </summary>
public sealed class DnsClientResolver : IDnsResolver
{
    /// <summary>
    /// How long an answer without records (NXDOMAIN, no data) or a server failure is kept. DnsClient caches
    /// only answers with records by default, so every message asked again for what the last one learnt does
    /// not exist: the TXT of a HELO name, a sender domain's missing DMARC record. RFC 2308 lets a resolver keep
    /// a negative answer for its SOA minimum and a server failure up to five minutes; DnsClient reads no SOA, so
    /// one bound short enough that a record just published is seen within a minute. Timeouts are not kept.
    /// </summary>
    public static readonly TimeSpan NegativeAnswerLifetime = TimeSpan.FromSeconds(60);

    private readonly LookupClient _client;

    /// <summary>Uses <see cref="DnsOptions.Servers"/> (ADDRESS or ADDRESS:PORT); the system resolvers when the list is empty.</summary>
    public DnsClientResolver(DnsOptions options, TimeSpan? timeout = null, int retries = 1)
        : this(options.Servers.Select(ParseServer).ToArray(), timeout ?? TimeSpan.FromSeconds(5), retries)
    {
    }

    /// <summary>Asks exactly <paramref name="servers"/> (the system resolvers when empty).</summary>
    public DnsClientResolver(IReadOnlyList<IPEndPoint> servers, TimeSpan timeout, int retries = 1)
    {
        var options = servers.Count == 0 ? new LookupClientOptions() : new LookupClientOptions(servers.ToArray());
        options.UseCache = true;
        options.CacheFailedResults = true;
        options.FailedResultsCacheDuration = NegativeAnswerLifetime;
        options.Timeout = timeout;
        options.Retries = retries;
        options.UseTcpFallback = true;
        options.ThrowDnsErrors = false;
        options.ContinueOnDnsError = false;
        options.ContinueOnEmptyResponse = false;
        if (servers.Count != 0)
            options.AutoResolveNameServers = false;
        _client = new LookupClient(options);
    }

    public Task<DnsAnswer<string>> QueryTxtAsync(string name, CancellationToken cancellationToken) =>
        QueryAsync(name, QueryType.TXT, answers => answers.TxtRecords().Select(r => string.Concat(r.Text)).ToArray(), cancellationToken);

    public Task<DnsAnswer<IPAddress>> QueryAddressesAsync(string name, AddressFamily family, CancellationToken cancellationToken) =>
        family == AddressFamily.InterNetworkV6
            ? QueryAsync(name, QueryType.AAAA, answers => answers.AaaaRecords().Select(r => r.Address).ToArray(), cancellationToken)
            : QueryAsync(name, QueryType.A, answers => answers.ARecords().Select(r => r.Address).ToArray(), cancellationToken);

    public Task<DnsAnswer<MxHost>> QueryMxAsync(string name, CancellationToken cancellationToken) =>
        QueryAsync(name, QueryType.MX,
            answers => answers.MxRecords().Select(r => new MxHost(r.Preference, r.Exchange.Value.TrimEnd('.'))).ToArray(),
            cancellationToken);

    public Task<DnsAnswer<string>> QueryPtrAsync(IPAddress address, CancellationToken cancellationToken) =>
        QueryAsync(ReverseDnsName.For(address), QueryType.PTR,
            answers => answers.PtrRecords().Select(r => r.PtrDomainName.Value.TrimEnd('.')).ToArray(),
            cancellationToken);

    private async Task<DnsAnswer<T>> QueryAsync<T>(
        string name, QueryType type, Func<IReadOnlyList<DnsResourceRecord>, IReadOnlyList<T>> select, CancellationToken cancellationToken)
    {
        IDnsQueryResponse response;
        try
        {
            response = await _client.QueryAsync(name, type, QueryClass.IN, cancellationToken).ConfigureAwait(false);
        }
        catch (DnsResponseException ex) when (ex.Code == DnsResponseCode.ConnectionTimeout)
        {
            return DnsAnswer<T>.Failed(DnsLookupStatus.Timeout, $"{type} {name}: no answer in time");
        }
        catch (DnsResponseException ex)
        {
            return DnsAnswer<T>.Failed(DnsLookupStatus.ServerFailure, $"{type} {name}: {ex.Message}");
        }
        catch (ArgumentException ex)
        {
            // DnsClient refuses names it cannot encode (labels over 63 octets and the like).
            return DnsAnswer<T>.Failed(DnsLookupStatus.ServerFailure, $"{type} {name}: {ex.Message}");
        }

        if (response.Header.ResponseCode == DnsHeaderResponseCode.NotExistentDomain)
            return DnsAnswer<T>.NonExistent;
        if (response.HasError)
            return DnsAnswer<T>.Failed(DnsLookupStatus.ServerFailure, $"{type} {name}: {response.ErrorMessage}");
        return DnsAnswer<T>.Found(select(response.Answers));
    }

    private static IPEndPoint ParseServer(string text) =>
        IPEndPoint.TryParse(text, out var endPoint) && endPoint.Port != 0 ? endPoint : new IPEndPoint(IPAddress.Parse(text), 53);
}
