using System.Net;
using System.Net.Sockets;
using Postern.Core.Authentication;
using Postern.Core.Tenants;

namespace Postern.Core.Delivery;

/// <summary>
/// Finds where a domain's mail goes: its MX hosts by preference, or the domain itself (RFC 5321 §5.1), and the
/// addresses of a host. Asks through <see cref="IDnsResolver"/>, the one DNS path of the node (Postern:Dns).
/// </summary>
public sealed class MxResolver
{
    private readonly IDnsResolver _dns;

    public MxResolver(IDnsResolver dns) => _dns = dns;

    /// <summary>MX host names by preference (lowest first); empty when the domain has none or does not exist.</summary>
    public async Task<IReadOnlyList<string>> LookupMxAsync(string domain, CancellationToken cancellationToken)
    {
        var answer = await _dns.QueryMxAsync(domain, cancellationToken).ConfigureAwait(false);
        if (answer.IsTemporaryFailure)
            throw new DnsLookupFailedException($"MX lookup for '{domain}' failed: {answer.Error}");
        return answer.Records
            .OrderBy(r => r.Preference)
            .Select(r => r.Exchange.TrimEnd('.').ToLowerInvariant())
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

    /// <summary>IPv4 then IPv6 addresses of a host; an IP literal is returned as is. Throws when DNS did not answer and nothing was found.</summary>
    public async Task<IReadOnlyList<IPAddress>> ResolveHostAsync(string host, CancellationToken cancellationToken)
    {
        if (IPAddress.TryParse(host, out var literal))
            return [literal];
        var a = _dns.QueryAddressesAsync(host, AddressFamily.InterNetwork, cancellationToken);
        var aaaa = _dns.QueryAddressesAsync(host, AddressFamily.InterNetworkV6, cancellationToken);
        var (v4, v6) = (await a.ConfigureAwait(false), await aaaa.ConfigureAwait(false));
        var addresses = v4.Records.Concat(v6.Records).ToArray();
        if (addresses.Length == 0 && (v4.IsTemporaryFailure || v6.IsTemporaryFailure))
            throw new DnsLookupFailedException($"address lookup for '{host}' failed: {(v4.IsTemporaryFailure ? v4.Error : v6.Error)}");
        return addresses;
    }
}

/// <summary>DNS could not answer; delivery treats it as temporary.</summary>
public sealed class DnsLookupFailedException(string message) : Exception(message);
