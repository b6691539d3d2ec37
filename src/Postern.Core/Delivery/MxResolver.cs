using System.Net;
using DnsClient;
using DnsClient.Protocol;
using Postern.Core.Configuration;
using Postern.Core.Tenants;

namespace Postern.Core.Delivery;

/// <summary>Finds where a domain's mail goes: its MX hosts by preference, or the domain itself (RFC 5321 §5.1).</summary>
public sealed class MxResolver
{
    private readonly LookupClient _client;

    public MxResolver(DnsOptions options)
    {
        var servers = options.Servers.Select(ParseServer).ToArray();
        var lookupOptions = servers.Length == 0 ? new LookupClientOptions() : new LookupClientOptions(servers);
        lookupOptions.UseCache = true;
        lookupOptions.Timeout = TimeSpan.FromSeconds(5);
        lookupOptions.Retries = 2;
        lookupOptions.ContinueOnDnsError = false;
        lookupOptions.ThrowDnsErrors = false;
        _client = new LookupClient(lookupOptions);
    }

    /// <summary>MX host names by preference (lowest first); empty when the domain has none.</summary>
    public async Task<IReadOnlyList<string>> LookupMxAsync(string domain, CancellationToken cancellationToken)
    {
        var response = await _client.QueryAsync(domain, QueryType.MX, QueryClass.IN, cancellationToken).ConfigureAwait(false);
        if (response.HasError && response.Header.ResponseCode != DnsHeaderResponseCode.NotExistentDomain)
            throw new DnsLookupFailedException($"MX lookup for '{domain}' failed: {response.ErrorMessage}");
        return response.Answers.OfType<MxRecord>()
            .OrderBy(r => r.Preference)
            .Select(r => r.Exchange.Value.TrimEnd('.').ToLowerInvariant())
            .Where(h => h.Length > 0)
            .Distinct()
            .ToArray();
    }

    /// <summary>The servers to try for <paramref name="domain"/> on <paramref name="port"/> (MX, else the domain's own address).</summary>
    public async Task<IReadOnlyList<MtaAddress>> ResolveAsync(string domain, int port, CancellationToken cancellationToken)
    {
        var hosts = await LookupMxAsync(domain, cancellationToken).ConfigureAwait(false);
        if (hosts.Count == 0)
            hosts = [domain];
        return hosts.Select(h => new MtaAddress(h, port)).ToArray();
    }

    /// <summary>IPv4 and IPv6 addresses of a host; an IP literal is returned as is.</summary>
    public async Task<IReadOnlyList<IPAddress>> ResolveHostAsync(string host, CancellationToken cancellationToken)
    {
        if (IPAddress.TryParse(host, out var literal))
            return [literal];
        var a = await _client.QueryAsync(host, QueryType.A, QueryClass.IN, cancellationToken).ConfigureAwait(false);
        var aaaa = await _client.QueryAsync(host, QueryType.AAAA, QueryClass.IN, cancellationToken).ConfigureAwait(false);
        return a.Answers.ARecords().Select(r => r.Address).Concat(aaaa.Answers.AaaaRecords().Select(r => r.Address)).ToArray();
    }

    private static IPEndPoint ParseServer(string text) =>
        IPEndPoint.TryParse(text, out var endPoint) && endPoint.Port != 0 ? endPoint : new IPEndPoint(IPAddress.Parse(text), 53);
}

/// <summary>DNS could not answer; delivery treats it as temporary.</summary>
public sealed class DnsLookupFailedException(string message) : Exception(message);
