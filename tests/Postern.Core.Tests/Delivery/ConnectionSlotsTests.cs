using Postern.Core.Delivery;

namespace Postern.Core.Tests.Delivery;

/// <summary>A server's connection budget: tenants take freed slots in turn, and a waiter that gives up takes none.</summary>
public sealed class ConnectionSlotsTests
{
    private static readonly Guid TenantA = Guid.NewGuid();
    private static readonly Guid TenantB = Guid.NewGuid();

    [Fact]
    public async Task A_freed_slot_goes_to_the_tenants_in_turn_not_to_whoever_queued_first()
    {
        var slots = new ConnectionSlots(1);
        await slots.WaitAsync(TenantA, default);
        var alpha = Enumerable.Range(0, 3).Select(_ => slots.WaitAsync(TenantA, default)).ToArray();
        var bravo = slots.WaitAsync(TenantB, default);

        slots.Release();
        await alpha[0].WaitAsync(TimeSpan.FromSeconds(5));
        slots.Release();
        await bravo.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.False(alpha[1].IsCompleted);
    }

    [Fact]
    public async Task A_waiter_that_gives_up_leaves_the_slot_to_the_next()
    {
        var slots = new ConnectionSlots(1);
        await slots.WaitAsync(TenantA, default);
        using var giveUp = new CancellationTokenSource();
        var cancelled = slots.WaitAsync(TenantA, giveUp.Token);
        var next = slots.WaitAsync(TenantB, default);

        await giveUp.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cancelled);
        slots.Release();
        await next.WaitAsync(TimeSpan.FromSeconds(5));
        slots.Release();
        await slots.WaitAsync(TenantA, default).WaitAsync(TimeSpan.FromSeconds(5));
    }
}
