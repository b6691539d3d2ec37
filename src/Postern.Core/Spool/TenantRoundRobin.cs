namespace Postern.Core.Spool;

/// <summary>
/// A queue that hands out items one tenant at a time, in turn: a tenant with a thousand items waiting
/// and one with a single item each get the next one alternately (the queue manager's per-tenant fairness).
/// Not thread-safe; the owner locks.
/// </summary>
internal sealed class TenantRoundRobin<T>
{
    private readonly Dictionary<Guid, Queue<T>> _byTenant = new();
    private readonly Queue<Guid> _turns = new();

    /// <summary>Items in the queue, all tenants together.</summary>
    public int Count { get; private set; }

    public void Enqueue(Guid tenant, T item)
    {
        if (!_byTenant.TryGetValue(tenant, out var items))
        {
            _byTenant[tenant] = items = new Queue<T>();
            _turns.Enqueue(tenant);
        }
        items.Enqueue(item);
        Count++;
    }

    /// <summary>The oldest item of the tenant whose turn it is; that tenant goes to the back of the line.</summary>
    public bool TryDequeue(out T item)
    {
        if (!_turns.TryDequeue(out var tenant))
        {
            item = default!;
            return false;
        }
        var items = _byTenant[tenant];
        item = items.Dequeue();
        Count--;
        if (items.Count > 0)
            _turns.Enqueue(tenant);
        else
            _byTenant.Remove(tenant);
        return true;
    }

    /// <summary>
    /// The oldest item of the first tenant in turn that is <paramref name="eligible"/>, left in place: tenants passed
    /// over keep their place in line, and the next <see cref="TryDequeue(out T)"/> takes this item.
    /// </summary>
    public bool TryPeek(Func<Guid, bool> eligible, out T item)
    {
        for (var tried = _turns.Count; tried > 0; tried--)
        {
            var tenant = _turns.Peek();
            if (eligible(tenant))
            {
                item = _byTenant[tenant].Peek();
                return true;
            }
            _turns.Enqueue(_turns.Dequeue());
        }
        item = default!;
        return false;
    }

    /// <summary>Takes every item out, in turn order.</summary>
    public List<T> DequeueAll()
    {
        var all = new List<T>(Count);
        while (TryDequeue(out var item))
            all.Add(item);
        return all;
    }
}
