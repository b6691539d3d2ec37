using System.Net;
using System.Net.Sockets;

namespace Postern.Core.Authentication;

/// <summary>
/// The DNS questions mail authentication asks. SPF must tell "the name does not exist" from "the name
/// has no such records" from "DNS did not answer", because each gives a different result (RFC 7208 §4.3,
/// §4.6.4, §5), so answers carry a <see cref="DnsLookupStatus"/> rather than throwing.
/// </summary>
public interface IDnsResolver
{
    /// <summary>TXT records of <paramref name="name"/>, each record's character-strings joined with nothing between them.</summary>
    Task<DnsAnswer<string>> QueryTxtAsync(string name, CancellationToken cancellationToken);

    /// <summary>A records (<see cref="AddressFamily.InterNetwork"/>) or AAAA records (<see cref="AddressFamily.InterNetworkV6"/>).</summary>
    Task<DnsAnswer<IPAddress>> QueryAddressesAsync(string name, AddressFamily family, CancellationToken cancellationToken);

    /// <summary>MX records of <paramref name="name"/>, in the order DNS gave them.</summary>
    Task<DnsAnswer<MxHost>> QueryMxAsync(string name, CancellationToken cancellationToken);

    /// <summary>PTR names of <paramref name="address"/> (the in-addr.arpa or ip6.arpa question is built for you).</summary>
    Task<DnsAnswer<string>> QueryPtrAsync(IPAddress address, CancellationToken cancellationToken);
}

/// <summary>How a DNS question ended.</summary>
public enum DnsLookupStatus
{
    /// <summary>At least one record of the asked type.</summary>
    Success,

    /// <summary>The name exists but has no records of the asked type (NOERROR, empty answer).</summary>
    NoData,

    /// <summary>The name does not exist (NXDOMAIN, RCODE 3).</summary>
    NonExistentDomain,

    /// <summary>No answer in time.</summary>
    Timeout,

    /// <summary>The server answered with an error (SERVFAIL, REFUSED, …) or the response could not be read.</summary>
    ServerFailure,
}

/// <summary>A host named by an MX record.</summary>
public sealed record MxHost(int Preference, string Exchange);

/// <summary>The records one DNS question returned, and how it ended.</summary>
public sealed record DnsAnswer<T>(DnsLookupStatus Status, IReadOnlyList<T> Records, string? Error = null)
{
    /// <summary>NXDOMAIN or an empty answer: what RFC 7208 §4.6.4 calls a void lookup.</summary>
    public bool IsVoid => Status is DnsLookupStatus.NoData or DnsLookupStatus.NonExistentDomain;

    /// <summary>Timeout or server failure: asking again later may give an answer.</summary>
    public bool IsTemporaryFailure => Status is DnsLookupStatus.Timeout or DnsLookupStatus.ServerFailure;

    public static DnsAnswer<T> Found(IReadOnlyList<T> records) =>
        new(records.Count == 0 ? DnsLookupStatus.NoData : DnsLookupStatus.Success, records);

    public static DnsAnswer<T> NoData { get; } = new(DnsLookupStatus.NoData, []);

    public static DnsAnswer<T> NonExistent { get; } = new(DnsLookupStatus.NonExistentDomain, []);

    public static DnsAnswer<T> Failed(DnsLookupStatus status, string error) => new(status, [], error);
}

/// <summary>Names under in-addr.arpa and ip6.arpa.</summary>
public static class ReverseDnsName
{
    /// <summary>"4.3.2.1.in-addr.arpa" for 1.2.3.4; 32 nibbles under ip6.arpa for IPv6.</summary>
    public static string For(IPAddress address)
    {
        var bytes = address.GetAddressBytes();
        if (address.AddressFamily == AddressFamily.InterNetwork)
            return $"{bytes[3]}.{bytes[2]}.{bytes[1]}.{bytes[0]}.in-addr.arpa";
        var nibbles = new char[bytes.Length * 4];
        var n = 0;
        for (var i = bytes.Length - 1; i >= 0; i--)
        {
            nibbles[n++] = "0123456789abcdef"[bytes[i] & 0xF];
            nibbles[n++] = '.';
            nibbles[n++] = "0123456789abcdef"[bytes[i] >> 4];
            nibbles[n++] = '.';
        }
        return new string(nibbles) + "ip6.arpa";
    }
}
