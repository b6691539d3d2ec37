using System.Net;

namespace Postern.Smtp.Internal;

internal enum Admission
{
    Admitted,
    TooManyFromAddress,
    TooManyTotal,
}

/// <summary>
/// Counts open connections in total and per client: per IPv4 address, per IPv6 /64 (one host usually holds a whole /64,
/// so counting single IPv6 addresses would not limit it at all). Checked before any session work.
/// </summary>
internal sealed class ConnectionLimiter(int maxTotal, int maxPerAddress)
{
    private readonly Dictionary<IPAddress, int> _perAddress = new();
    private readonly Lock _lock = new();
    private int _total;

    public int Total
    {
        get
        {
            lock (_lock)
            {
                return _total;
            }
        }
    }

    public Admission TryAcquire(IPAddress address)
    {
        address = CountedAs(address);
        lock (_lock)
        {
            if (_total >= maxTotal)
            {
                return Admission.TooManyTotal;
            }
            _perAddress.TryGetValue(address, out var count);
            if (count >= maxPerAddress)
            {
                return Admission.TooManyFromAddress;
            }
            _perAddress[address] = count + 1;
            _total++;
            return Admission.Admitted;
        }
    }

    public void Release(IPAddress address)
    {
        address = CountedAs(address);
        lock (_lock)
        {
            if (_perAddress.TryGetValue(address, out var count))
            {
                if (count <= 1)
                {
                    _perAddress.Remove(address);
                }
                else
                {
                    _perAddress[address] = count - 1;
                }
                _total--;
            }
        }
    }

    /// <summary>The key a client is counted under: its IPv4 address, or the /64 its IPv6 address is in.</summary>
    public static IPAddress CountedAs(IPAddress address)
    {
        address = Normalize(address);
        if (address.AddressFamily != System.Net.Sockets.AddressFamily.InterNetworkV6)
        {
            return address;
        }
        Span<byte> bytes = stackalloc byte[16];
        address.TryWriteBytes(bytes, out _);
        bytes[8..].Clear();
        return new IPAddress(bytes);
    }

    /// <summary>IPv4 clients on a dual-mode socket appear as ::ffff:a.b.c.d; count them as the IPv4 address.</summary>
    public static IPAddress Normalize(IPAddress address) => address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address;
}
