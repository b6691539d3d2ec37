using Postern.Core.Spool;

namespace Postern.Core.Delivery;

/// <summary>
/// The connection budget of one next-hop server, handed out one tenant at a time, in turn: many destinations can
/// share one server (every domain a mail provider hosts has its MX there), so a tenant mailing forty of them at
/// once would otherwise queue forty destinations' deliveries ahead of another tenant's one.
/// </summary>
internal sealed class ConnectionSlots(int count)
{
    private readonly object _gate = new();
    private readonly TenantRoundRobin<TaskCompletionSource> _waiting = new();
    private int _free = count;

    /// <summary>Completes when <paramref name="tenant"/> holds a slot; give it back with <see cref="Release"/>.</summary>
    public async Task WaitAsync(Guid tenant, CancellationToken cancellationToken)
    {
        TaskCompletionSource waiter;
        lock (_gate)
        {
            if (_free > 0)
            {
                _free--;
                return;
            }
            waiter = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _waiting.Enqueue(tenant, waiter);
        }
        // A waiter cancelled first is passed over by Release; one given the slot first keeps it.
        using (cancellationToken.Register(static state => ((TaskCompletionSource)state!).TrySetCanceled(), waiter))
            await waiter.Task.ConfigureAwait(false);
    }

    /// <summary>Gives a slot back: to the next waiting tenant in turn, or to the free ones.</summary>
    public void Release()
    {
        lock (_gate)
        {
            while (_waiting.TryDequeue(out var next))
            {
                if (next.TrySetResult())
                    return;
            }
            _free++;
        }
    }
}
