using System.Collections.Concurrent;
using Postern.Core.Delivery;
using Postern.Core.Spool;

namespace Postern.Core.Tests.Delivery;

/// <summary>The queue manager's per-destination queues: own budgets, round-robin between tenants, nothing kept for idle destinations.</summary>
public sealed class DestinationQueuesTests : IDisposable
{
    private static readonly Guid TenantA = Guid.NewGuid();
    private static readonly Guid TenantB = Guid.NewGuid();
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(10);

    private readonly CancellationTokenSource _stopping = new();

    public void Dispose()
    {
        _stopping.Cancel();
        _stopping.Dispose();
    }

    private sealed record Job(string Destination, Guid Tenant, int Number);

    [Fact]
    public async Task A_hung_destination_uses_only_its_own_budget_and_another_destinations_jobs_still_run()
    {
        var started = new ConcurrentDictionary<string, int>();
        var delivered = new ConcurrentQueue<Job>();
        var queues = new DestinationQueues<Job>(2, async (job, ct) =>
        {
            started.AddOrUpdate(job.Destination, 1, (_, n) => n + 1);
            if (job.Destination == "tenant:hung.test")
                await Task.Delay(Timeout.Infinite, ct); // accepts, never answers
            delivered.Enqueue(job);
        }, _stopping.Token);

        for (var i = 0; i < 300; i++)
            Assert.True(queues.TryAdd("tenant:hung.test", TenantA, new Job("tenant:hung.test", TenantA, i), DateTimeOffset.UtcNow, out _));
        for (var i = 0; i < 40; i++)
            Assert.True(queues.TryAdd("tenant:fine.test", TenantB, new Job("tenant:fine.test", TenantB, i), DateTimeOffset.UtcNow, out _));

        await UntilAsync(() => delivered.Count == 40, "all 40 jobs of the healthy destination");
        Assert.All(delivered, j => Assert.Equal("tenant:fine.test", j.Destination));
        Assert.Equal(2, started["tenant:hung.test"]);
    }

    [Fact]
    public async Task Within_one_destination_a_tenant_with_twenty_times_the_mail_alternates_with_the_other()
    {
        var runner = new GatedRunner();
        var queues = new DestinationQueues<Job>(1, runner.RunAsync, _stopping.Token);

        // A's backlog is queued first (its first job already in delivery); B's two messages come after all of it.
        queues.TryAdd("mx:shared.test", TenantA, new Job("mx:shared.test", TenantA, 0), DateTimeOffset.UtcNow, out _);
        await UntilAsync(() => runner.Started == 1, "the first job to start");
        for (var i = 1; i < 40; i++)
            queues.TryAdd("mx:shared.test", TenantA, new Job("mx:shared.test", TenantA, i), DateTimeOffset.UtcNow, out _);
        for (var i = 0; i < 2; i++)
            queues.TryAdd("mx:shared.test", TenantB, new Job("mx:shared.test", TenantB, i), DateTimeOffset.UtcNow, out _);
        runner.Open();

        await UntilAsync(() => runner.Ran.Count == 42, "every job");
        var positions = runner.Ran.Select((job, at) => (job, at)).Where(p => p.job.Tenant == TenantB).Select(p => p.at).ToArray();
        // The first A job was already running; then A and B take turns.
        Assert.Equal([2, 4], positions);
    }

    [Fact]
    public async Task A_destination_with_nothing_to_do_keeps_no_queue()
    {
        var queues = new DestinationQueues<Job>(4, (_, _) => Task.CompletedTask, _stopping.Token);
        for (var i = 0; i < 100; i++)
            queues.TryAdd($"mx:domain{i}.test", TenantA, new Job($"mx:domain{i}.test", TenantA, i), DateTimeOffset.UtcNow, out _);
        await UntilAsync(() => queues.DestinationCount == 0, "every destination to be forgotten once idle");
    }

    [Fact]
    public async Task A_suspended_destination_hands_back_its_queue_and_refuses_new_jobs_until_resumed()
    {
        var runner = new GatedRunner();
        var queues = new DestinationQueues<Job>(1, runner.RunAsync, _stopping.Token);
        var now = DateTimeOffset.UtcNow;
        queues.TryAdd("tenant:down.test", TenantA, new Job("tenant:down.test", TenantA, 0), now, out _);
        await UntilAsync(() => runner.Started == 1, "the first job to start");
        for (var i = 1; i < 5; i++)
            queues.TryAdd("tenant:down.test", TenantA, new Job("tenant:down.test", TenantA, i), now, out _);

        var handedBack = queues.Suspend("tenant:down.test", now.AddMinutes(5), "timed out waiting for the greeting");
        Assert.Equal([1, 2, 3, 4], handedBack.Select(j => j.Number));
        Assert.False(queues.TryAdd("tenant:down.test", TenantA, new Job("tenant:down.test", TenantA, 5), now.AddMinutes(1), out var because));
        Assert.Equal("timed out waiting for the greeting", because);
        Assert.True(queues.TryAdd("tenant:down.test", TenantA, new Job("tenant:down.test", TenantA, 6), now.AddMinutes(6), out _));

        Assert.Equal([6], queues.Suspend("tenant:down.test", now.AddMinutes(5), "again").Select(j => j.Number));
        queues.ResumeAll();
        Assert.True(queues.TryAdd("tenant:down.test", TenantA, new Job("tenant:down.test", TenantA, 7), now, out _));
        runner.Open();
        await UntilAsync(() => runner.Ran.Count == 2, "the job that was running and the one added after resuming");
        Assert.Equal([0, 7], runner.Ran.Select(j => j.Number));
    }

    [Fact]
    public void Round_robin_gives_each_tenant_with_work_a_turn_and_keeps_each_tenants_order()
    {
        var queue = new TenantRoundRobin<string>();
        foreach (var item in new[] { "a1", "a2", "a3", "a4" })
            queue.Enqueue(TenantA, item);
        queue.Enqueue(TenantB, "b1");
        queue.Enqueue(TenantB, "b2");
        Assert.Equal(6, queue.Count);
        Assert.Equal(["a1", "b1", "a2", "b2", "a3", "a4"], queue.DequeueAll());
        Assert.False(queue.TryDequeue(out _));
        Assert.Equal(0, queue.Count);
    }

    [Fact]
    public void Round_robin_passes_over_a_tenant_that_is_not_eligible_and_keeps_its_turn()
    {
        var queue = new TenantRoundRobin<string>();
        queue.Enqueue(TenantA, "a1");
        queue.Enqueue(TenantB, "b1");
        queue.Enqueue(TenantB, "b2");
        Assert.True(queue.TryPeek(t => t != TenantA, out var first));
        Assert.True(queue.TryDequeue(out var taken));
        Assert.True(queue.TryPeek(t => t != TenantA, out var second));
        Assert.True(queue.TryDequeue(out var taken2));
        Assert.False(queue.TryPeek(t => t != TenantA, out _));
        Assert.Equal(("b1", "b2"), (first, second));
        Assert.Equal((first, second), (taken, taken2));
        Assert.True(queue.TryDequeue(out var last));
        Assert.Equal("a1", last);
    }

    /// <summary>Deliveries that start, then wait until <see cref="Open"/>; records the order they finish in.</summary>
    private sealed class GatedRunner
    {
        private readonly TaskCompletionSource _gate = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private int _started;

        public ConcurrentQueue<Job> Ran { get; } = new();

        public int Started => Volatile.Read(ref _started);

        public void Open() => _gate.SetResult();

        public async Task RunAsync(Job job, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref _started);
            await _gate.Task.WaitAsync(cancellationToken);
            Ran.Enqueue(job);
        }
    }

    private static async Task UntilAsync(Func<bool> condition, string what)
    {
        var until = DateTime.UtcNow + Deadline;
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < until, $"timed out after {Deadline.TotalSeconds} s waiting for {what}");
            await Task.Delay(20);
        }
    }
}
