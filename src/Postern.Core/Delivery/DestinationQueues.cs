using Postern.Core.Spool;

namespace Postern.Core.Delivery;

/// <summary>
/// The queue manager's in-memory queues, one per destination (a tenant domain's MTAs, or an outbound MX
/// domain). Each destination runs at most its connection budget of deliveries at once and takes the next job
/// round-robin between tenants, so a hung, slow or refusing destination holds only its own slots and a busy
/// tenant cannot push another tenant's mail back. A destination with nothing to do has no queue and no task.
/// </summary>
/// <remarks>
/// A destination that could not be reached is <em>suspended</em> (Postfix's dead destination): its queued jobs are
/// handed back to be deferred, and new ones are refused until the suspension ends or <see cref="ResumeAll"/>.
/// </remarks>
internal sealed class DestinationQueues<TJob>
{
    private readonly int _budget;
    private readonly Func<TJob, CancellationToken, Task> _run;
    private readonly CancellationToken _stopping;
    private readonly object _gate = new();
    private readonly Dictionary<string, Destination> _destinations = new(StringComparer.Ordinal);
    private readonly HashSet<Task> _runners = new();

    /// <param name="budget">Deliveries one destination may run at once (<see cref="Configuration.DeliveryOptions.MaxConnectionsPerDestination"/>).</param>
    /// <param name="run">Delivers one job; it must not throw except when <paramref name="stopping"/> is cancelled.</param>
    /// <param name="stopping">Cancelled at shutdown: runners stop taking jobs.</param>
    public DestinationQueues(int budget, Func<TJob, CancellationToken, Task> run, CancellationToken stopping)
    {
        _budget = budget;
        _run = run;
        _stopping = stopping;
    }

    /// <summary>Destinations that have queued or running jobs, or are suspended.</summary>
    public int DestinationCount
    {
        get { lock (_gate) return _destinations.Count; }
    }

    /// <summary>
    /// Queues <paramref name="job"/> for <paramref name="destination"/> and starts a delivery if the budget allows;
    /// false (with the reason) when the destination is suspended and the job was not queued.
    /// </summary>
    public bool TryAdd(string destination, Guid tenant, TJob job, DateTimeOffset now, out string suspendedBecause)
    {
        suspendedBecause = "";
        lock (_gate)
        {
            if (!_destinations.TryGetValue(destination, out var queue))
                _destinations[destination] = queue = new Destination(destination);
            if (queue.SuspendedUntil > now)
            {
                suspendedBecause = queue.SuspendedBecause;
                return false;
            }
            queue.Jobs.Enqueue(tenant, job);
            if (queue.Running < _budget)
                StartRunner(queue);
        }
        return true;
    }

    /// <summary>Suspends <paramref name="destination"/> until <paramref name="until"/>; returns the jobs that were queued for it.</summary>
    public List<TJob> Suspend(string destination, DateTimeOffset until, string because)
    {
        lock (_gate)
        {
            if (!_destinations.TryGetValue(destination, out var queue))
                _destinations[destination] = queue = new Destination(destination);
            queue.SuspendedUntil = until;
            queue.SuspendedBecause = because;
            return queue.Jobs.DequeueAll();
        }
    }

    /// <summary>Lifts every suspension (the operator asked for delivery now).</summary>
    public void ResumeAll()
    {
        lock (_gate)
        {
            foreach (var queue in _destinations.Values.ToList())
            {
                queue.SuspendedUntil = DateTimeOffset.MinValue;
                RemoveIfIdle(queue, DateTimeOffset.MinValue);
            }
        }
    }

    /// <summary>Forgets suspensions that have ended, so idle destinations cost nothing.</summary>
    public void Sweep(DateTimeOffset now)
    {
        lock (_gate)
        {
            foreach (var queue in _destinations.Values.ToList())
                RemoveIfIdle(queue, now);
        }
    }

    /// <summary>Completes when every running delivery has returned (after <c>stopping</c> is cancelled).</summary>
    public Task WhenStoppedAsync()
    {
        lock (_gate)
            return Task.WhenAll(_runners.ToArray());
    }

    private void StartRunner(Destination queue)
    {
        queue.Running++;
        var runner = Task.Run(() => RunAsync(queue));
        _runners.Add(runner);
        _ = runner.ContinueWith(t =>
        {
            lock (_gate)
                _runners.Remove(t);
        }, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }

    private async Task RunAsync(Destination queue)
    {
        while (true)
        {
            TJob job;
            lock (_gate)
            {
                if (_stopping.IsCancellationRequested || !queue.Jobs.TryDequeue(out job))
                {
                    queue.Running--;
                    RemoveIfIdle(queue, DateTimeOffset.UtcNow);
                    return;
                }
            }
            try
            {
                await _run(job, _stopping).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (_stopping.IsCancellationRequested)
            {
            }
        }
    }

    private void RemoveIfIdle(Destination queue, DateTimeOffset now)
    {
        if (queue.Running == 0 && queue.Jobs.Count == 0 && queue.SuspendedUntil <= now)
            _destinations.Remove(queue.Key);
    }

    /// <summary>One destination's waiting jobs, how many are being delivered, and whether it is suspended.</summary>
    private sealed class Destination(string key)
    {
        public string Key { get; } = key;
        public TenantRoundRobin<TJob> Jobs { get; } = new();
        public int Running { get; set; }
        public DateTimeOffset SuspendedUntil { get; set; } = DateTimeOffset.MinValue;
        public string SuspendedBecause { get; set; } = "";
    }
}
