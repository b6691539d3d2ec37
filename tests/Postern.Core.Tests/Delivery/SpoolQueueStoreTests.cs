using System.Text;
using Microsoft.Extensions.Logging.Abstractions;
using Postern.Core.Spool;

namespace Postern.Core.Tests.Delivery;

/// <summary><see cref="MessageSpool"/> as the scheduler's <see cref="IQueueStore"/>: release, claim when due, read back.</summary>
public sealed class SpoolQueueStoreTests : IAsyncLifetime
{
    private static readonly Guid TenantA = Guid.NewGuid();
    private static readonly Guid TenantB = Guid.NewGuid();

    private readonly string _dir = Directory.CreateTempSubdirectory("postern-queue-").FullName;
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

    private async Task<SpooledMessage> StoreAsync(IQueueStore store, Guid tenant, string body, int recipients = 1)
    {
        var envelope = new Envelope
        {
            QueueId = QueueId.New(),
            ReceivedAt = DateTimeOffset.UtcNow,
            TenantId = tenant,
            MailFrom = "alice@contoso.test",
            Recipients = Enumerable.Range(0, recipients).Select(i => new EnvelopeRecipient($"user{i}@contoso.test", RecipientRoute.Tenant)).ToArray(),
            Client = "127.0.0.1",
        };
        using var content = new MessageContent(store.SpillDirectory);
        await content.WriteAsync(Encoding.ASCII.GetBytes(body), default);
        return await store.AppendAsync(envelope, ReadOnlyMemory<byte>.Empty, content, 0, default);
    }

    /// <summary>Stores and releases, due at <paramref name="now"/>, alpha's messages and then bravo's.</summary>
    private async Task ReleaseBacklogsAsync(IQueueStore store, DateTimeOffset now, int alpha, int bravo)
    {
        foreach (var (tenant, count) in new[] { (TenantA, alpha), (TenantB, bravo) })
        {
            for (var i = 0; i < count; i++)
                store.Release(await StoreAsync(store, tenant, $"message {i}"), now);
        }
    }

    [Fact]
    public async Task A_released_message_leaves_its_body_on_disk_and_is_claimed_only_when_due()
    {
        IQueueStore store = _spool;
        var message = await StoreAsync(store, TenantA, "Subject: later\r\n\r\nbody\r\n");
        var now = DateTimeOffset.UtcNow;

        store.Release(message, now.AddMinutes(5));

        Assert.Null(message.CachedBody);
        Assert.Empty(store.Claim(now, 10));
        var claimed = Assert.Single(store.Claim(now.AddMinutes(5), 10));
        Assert.Equal(message.QueueId, claimed.QueueId);
        using var body = new StreamReader(store.OpenBody(claimed), Encoding.ASCII);
        Assert.Equal("Subject: later\r\n\r\nbody\r\n", body.ReadToEnd());
        Assert.Empty(store.Claim(now.AddHours(1), 10));
    }

    [Fact]
    public async Task A_released_message_is_read_back_from_its_record_with_its_envelope_finished_recipients_and_attempts()
    {
        IQueueStore store = _spool;
        var message = await StoreAsync(store, TenantA, "Subject: three\r\n\r\nbody\r\n", recipients: 3);
        store.Finish(message, [1]);
        message.Attempts = 2;
        var now = DateTimeOffset.UtcNow;

        store.Release(message, now);
        var claimed = Assert.Single(store.Claim(now, 1));

        Assert.NotSame(message, claimed);
        Assert.Equal(message.Envelope.Recipients, claimed.Envelope.Recipients);
        Assert.Equal(message.Envelope.ReceivedAt, claimed.Envelope.ReceivedAt);
        Assert.Equal([0, 2], claimed.PendingRecipients);
        Assert.Equal(2, claimed.Attempts);
        using var body = new StreamReader(store.OpenBody(claimed), Encoding.ASCII);
        Assert.Equal("Subject: three\r\n\r\nbody\r\n", body.ReadToEnd());
    }

    [Fact]
    public async Task A_message_recovered_after_a_restart_is_released_and_read_back_from_its_record()
    {
        var stored = await StoreAsync(_spool, TenantA, "Subject: recovered\r\n\r\nbody\r\n", recipients: 2);
        _spool.Finish(stored, [0]);
        await _spool.DisposeAsync();
        _spool = new MessageSpool(_dir, NullLogger<MessageSpool>.Instance);
        var recovered = Assert.Single(_spool.Recover());
        _spool.Start();
        IQueueStore store = _spool;
        var now = DateTimeOffset.UtcNow;

        store.Release(recovered, now);
        var claimed = Assert.Single(store.Claim(now, 1));

        Assert.Equal(stored.Envelope.Recipients, claimed.Envelope.Recipients);
        Assert.Equal([1], claimed.PendingRecipients);
        using var body = new StreamReader(store.OpenBody(claimed), Encoding.ASCII);
        Assert.Equal("Subject: recovered\r\n\r\nbody\r\n", body.ReadToEnd());
    }

    [Fact]
    public async Task Claims_take_tenants_in_turn_and_never_more_than_asked()
    {
        IQueueStore store = _spool;
        var now = DateTimeOffset.UtcNow;
        await ReleaseBacklogsAsync(store, now, alpha: 20, bravo: 1);

        var first = store.Claim(now, 2);
        Assert.Equal([TenantA, TenantB], first.Select(m => m.Envelope.TenantId));
        Assert.Equal(19, store.Claim(now, 100).Count);
    }

    [Fact]
    public async Task A_tenant_refused_admission_keeps_its_messages_waiting_while_the_others_are_claimed()
    {
        IQueueStore store = _spool;
        var now = DateTimeOffset.UtcNow;
        await ReleaseBacklogsAsync(store, now, alpha: 5, bravo: 1);
        var asked = 0;

        var claimed = store.Claim(now, 10, tenant =>
        {
            asked++;
            return tenant != TenantA;
        });

        Assert.Equal([TenantB], claimed.Select(m => m.Envelope.TenantId));
        Assert.Equal(2, asked); // once for alpha, whose other messages are then passed over, once for bravo
        Assert.Equal(5, store.Claim(now, 10).Count);
    }

    [Fact]
    public async Task A_tenant_refused_admission_is_claimed_later_in_the_order_its_messages_were_queued()
    {
        IQueueStore store = _spool;
        var now = DateTimeOffset.UtcNow;
        var alpha = new List<string>();
        for (var i = 0; i < 4; i++)
        {
            var message = await StoreAsync(store, TenantA, $"message {i}");
            alpha.Add(message.QueueId);
            store.Release(message, now.AddMilliseconds(i));
        }
        var due = now.AddSeconds(1);

        // Alpha has its share in memory for three claims in a row (the scheduler claims every 200 ms).
        for (var i = 0; i < 3; i++)
            Assert.Empty(store.Claim(due, 10, _ => false));

        Assert.Equal(alpha, store.Claim(due, 10).Select(m => m.QueueId));
    }

    [Fact]
    public async Task Make_due_brings_a_deferred_message_forward_once()
    {
        IQueueStore store = _spool;
        var now = DateTimeOffset.UtcNow;
        var message = await StoreAsync(store, TenantA, "x");
        store.Release(message, now.AddHours(1));

        Assert.Equal(1, store.MakeDue(message.QueueId));
        Assert.Equal(0, store.MakeDue("no-such-id"));
        Assert.Single(store.Claim(now, 10));
        // The old entry for an hour later is stale: the message was claimed.
        Assert.Empty(store.Claim(now.AddHours(2), 10));
        Assert.Equal(0, _spool.WaitingCount);
    }
}
