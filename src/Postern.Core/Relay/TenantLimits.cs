using Postern.Core.Configuration;
using Postern.Core.Spool;
using Postern.Core.Tenants;
using Postern.Smtp;

namespace Postern.Core.Relay;

/// <summary>
/// Per-tenant limits on what one tenant may hold of the node (<see cref="TenantLimitOptions"/>): transactions in progress
/// and bytes in the spool, taken at the header section, where the relay key names the tenant. A tenant over a limit gets
/// <c>451 4.7.0</c> (Exchange Online queues the message and retries it for a day: docs/operations.md); other tenants are
/// not affected.
/// </summary>
public sealed class TenantLimits
{
    private readonly TenantLimitOptions _options;
    private readonly object _gate = new();
    private readonly Dictionary<Guid, int> _transactions = new();
    private readonly Dictionary<Guid, long> _spoolBytes = new();
    // By queue id, not by object: the queue reads a waiting message back from the spool as a new object, and keeping
    // the object here would keep its cached body in memory too.
    private readonly Dictionary<string, (Guid Tenant, long Bytes)> _counted = new(StringComparer.Ordinal);

    public TenantLimits(TenantLimitOptions options, MessageSpool spool)
    {
        _options = options;
        spool.MessageFinished += Finished;
    }

    /// <summary>
    /// Admits one transaction of <paramref name="tenant"/> carrying <paramref name="size"/> bytes: a lease to dispose
    /// when the transaction ends, or null with the refusal when the tenant is over a limit.
    /// </summary>
    public IDisposable? TryEnter(Tenant tenant, long size, out Refusal? refusal)
    {
        refusal = null;
        lock (_gate)
        {
            var active = _transactions.GetValueOrDefault(tenant.Id);
            if (active >= _options.MaxConcurrentTransactions)
            {
                refusal = new Refusal(new SmtpReply(451, "4.7.0", "Too many messages of this tenant at once; please try again later"),
                    $"tenant limit: {active} transactions in progress (limit {_options.MaxConcurrentTransactions})", tenant);
                return null;
            }
            if (!HasRoomLocked(tenant, size, out refusal))
                return null;
            _transactions[tenant.Id] = active + 1;
        }
        return new Lease(this, tenant.Id);
    }

    /// <summary>
    /// Whether <paramref name="tenant"/>'s spool has room for <paramref name="size"/> more bytes: checked again at the end
    /// of a transaction admitted at its header section, when the message's real size is known.
    /// </summary>
    public bool HasRoom(Tenant tenant, long size, out Refusal? refusal)
    {
        lock (_gate)
            return HasRoomLocked(tenant, size, out refusal);
    }

    private bool HasRoomLocked(Tenant tenant, long size, out Refusal? refusal)
    {
        refusal = null;
        var stored = _spoolBytes.GetValueOrDefault(tenant.Id);
        if (stored + size <= _options.MaxSpoolBytes)
            return true;
        refusal = new Refusal(new SmtpReply(451, "4.7.0", "This tenant has too much mail waiting for delivery; please try again later"),
            $"tenant limit: {stored} bytes in the spool, {size} more would pass the limit of {_options.MaxSpoolBytes}", tenant);
        return false;
    }

    /// <summary>Counts a message now in the spool to its tenant until it is finished.</summary>
    public void Stored(SpooledMessage message)
    {
        lock (_gate)
        {
            if (!_counted.TryAdd(message.QueueId, (message.Envelope.TenantId, message.BodyLength)))
                return;
            _spoolBytes[message.Envelope.TenantId] = _spoolBytes.GetValueOrDefault(message.Envelope.TenantId) + message.BodyLength;
        }
    }

    /// <summary>Bytes of <paramref name="tenantId"/>'s unfinished messages in the spool.</summary>
    public long SpoolBytesOf(Guid tenantId)
    {
        lock (_gate)
            return _spoolBytes.GetValueOrDefault(tenantId);
    }

    /// <summary>Transactions of <paramref name="tenantId"/> in progress.</summary>
    public int TransactionsOf(Guid tenantId)
    {
        lock (_gate)
            return _transactions.GetValueOrDefault(tenantId);
    }

    private void Finished(SpooledMessage message)
    {
        lock (_gate)
        {
            if (!_counted.Remove(message.QueueId, out var counted))
                return;
            var left = _spoolBytes[counted.Tenant] - counted.Bytes;
            if (left <= 0)
                _spoolBytes.Remove(counted.Tenant);
            else
                _spoolBytes[counted.Tenant] = left;
        }
    }

    private void Leave(Guid tenantId)
    {
        lock (_gate)
        {
            var left = _transactions[tenantId] - 1;
            if (left == 0)
                _transactions.Remove(tenantId);
            else
                _transactions[tenantId] = left;
        }
    }

    private sealed class Lease(TenantLimits limits, Guid tenantId) : IDisposable
    {
        private int _disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0)
                limits.Leave(tenantId);
        }
    }
}
