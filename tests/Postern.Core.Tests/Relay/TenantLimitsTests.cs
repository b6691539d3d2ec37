using Microsoft.Extensions.Logging.Abstractions;
using Postern.Core.Configuration;
using Postern.Core.Relay;
using Postern.Core.Spool;
using Postern.Core.Tenants;

namespace Postern.Core.Tests.Relay;

public sealed class TenantLimitsTests : IAsyncLifetime
{
    private readonly string _dir = Directory.CreateTempSubdirectory("postern-limits-").FullName;
    private readonly Tenant _noisy = NewTenant("noisy");
    private readonly Tenant _quiet = NewTenant("quiet");
    private MessageSpool _spool = null!;

    public Task InitializeAsync()
    {
        _spool = new MessageSpool(_dir, NullLogger<MessageSpool>.Instance);
        _spool.Recover();
        _spool.Start();
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await _spool.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public void A_tenant_at_its_transaction_limit_gets_451_4_7_0_and_another_tenant_does_not()
    {
        var limits = new TenantLimits(new TenantLimitOptions { MaxConcurrentTransactions = 2 }, _spool);
        using var first = limits.TryEnter(_noisy, 100, out _);
        using var second = limits.TryEnter(_noisy, 100, out _);
        Assert.NotNull(second);

        Assert.Null(limits.TryEnter(_noisy, 100, out var refusal));
        Assert.Equal("451 4.7.0", $"{refusal!.Reply.Code} {refusal.Reply.EnhancedCode}");
        using (var quiet = limits.TryEnter(_quiet, 100, out var none))
            Assert.True(quiet is not null && none is null);

        first!.Dispose();
        using var third = limits.TryEnter(_noisy, 100, out _);
        Assert.NotNull(third);
    }

    [Fact]
    public async Task Spool_bytes_count_until_the_message_is_finished_and_only_against_its_tenant()
    {
        var limits = new TenantLimits(new TenantLimitOptions { MaxSpoolBytes = 1000 }, _spool);
        var stored = await StoreAsync(_noisy, 800);
        limits.Stored(stored);
        Assert.Equal(800, limits.SpoolBytesOf(_noisy.Id));

        Assert.Null(limits.TryEnter(_noisy, 300, out var refusal));
        Assert.Equal("451 4.7.0", $"{refusal!.Reply.Code} {refusal.Reply.EnhancedCode}");
        // The check at the end of a transaction admitted at its header section, with the real size.
        Assert.False(limits.HasRoom(_noisy, 300, out refusal));
        Assert.Equal("451 4.7.0", $"{refusal!.Reply.Code} {refusal.Reply.EnhancedCode}");
        Assert.True(limits.HasRoom(_noisy, 200, out _));
        using (var quiet = limits.TryEnter(_quiet, 900, out _))
            Assert.NotNull(quiet);

        _spool.Finish(stored, [0]);
        Assert.Equal(0, limits.SpoolBytesOf(_noisy.Id));
        using var again = limits.TryEnter(_noisy, 300, out _);
        Assert.NotNull(again);
    }

    [Fact]
    public async Task Spool_bytes_are_freed_when_a_message_that_waited_in_the_queue_store_is_finished()
    {
        // A deferred message waits in the store as a reference to its record and comes back as a new object.
        var limits = new TenantLimits(new TenantLimitOptions { MaxSpoolBytes = 1000 }, _spool);
        var stored = await StoreAsync(_noisy, 800);
        limits.Stored(stored);
        _spool.Release(stored, DateTimeOffset.UtcNow.AddMinutes(-1));
        var claimed = Assert.Single(_spool.Claim(DateTimeOffset.UtcNow, 10));
        Assert.NotSame(stored, claimed);

        _spool.Finish(claimed, [0]);
        Assert.Equal(0, limits.SpoolBytesOf(_noisy.Id));
        using var again = limits.TryEnter(_noisy, 900, out _);
        Assert.NotNull(again);
    }

    private async Task<SpooledMessage> StoreAsync(Tenant tenant, int size)
    {
        var envelope = new Envelope
        {
            QueueId = QueueId.New(),
            ReceivedAt = DateTimeOffset.UtcNow,
            TenantId = tenant.Id,
            MailFrom = "a@partner.test",
            Recipients = [new EnvelopeRecipient("alice@" + tenant.Name + ".test", RecipientRoute.Tenant)],
            Client = "127.0.0.1",
        };
        using var content = new MessageContent(_spool.SpillDirectory);
        await content.WriteAsync(new byte[size], default);
        return await _spool.AppendAsync(envelope, ReadOnlyMemory<byte>.Empty, content, 0, default);
    }

    private static Tenant NewTenant(string name) =>
        new() { Id = Guid.NewGuid(), Name = name, Region = "eu", LoopToken = LoopToken.Generate(), CreatedAt = DateTimeOffset.UtcNow };
}
