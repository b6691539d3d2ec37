using System.Net;

namespace Postern.Smtp.Internal;

internal enum Admission
{
    Admitted,
    TooManyFromAddress,
    TooManyTotal,
}

/// <summary>Counts open connections in total and per client address; checked before any session work.</summary>
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

    /// <summary>IPv4 clients on a dual-mode socket appear as ::ffff:a.b.c.d; count them as the IPv4 address.</summary>
    public static IPAddress Normalize(IPAddress address) => address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address;
}
