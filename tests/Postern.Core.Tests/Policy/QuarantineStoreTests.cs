using System.Text;
using Microsoft.Extensions.Logging.Abstractions;
using Postern.Core.Quarantine;
using Postern.Core.Spool;
using Postern.Core.Storage;

namespace Postern.Core.Tests.Policy;

public sealed class QuarantineStoreTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("postern-quarantine-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private QuarantineEntry Hold(QuarantineStore store)
    {
        var envelope = new Envelope
        {
            QueueId = QueueId.New(),
            ReceivedAt = DateTimeOffset.UtcNow,
            TenantId = Guid.NewGuid(),
            MailFrom = "a@fabrikam.test",
            Recipients = [new EnvelopeRecipient("bob@contoso.test", RecipientRoute.Tenant)],
            Client = "127.0.0.1",
            Subject = "hi",
        };
        using var content = new MessageContent(Path.Combine(_dir, "incoming"));
        content.WriteAsync(Encoding.ASCII.GetBytes("Subject: hi\r\n\r\nEICAR\r\n"), default).AsTask().Wait();
        return store.Hold(envelope, Encoding.ASCII.GetBytes("Received: x\r\n"), content, 0, "quarantine-malware", "clamav: EICAR");
    }

    [Fact]
    public void A_held_message_is_kept_whole_and_listed()
    {
        var store = new QuarantineStore(new PosternDatabase(_dir), _dir);
        var held = Hold(store);
        Assert.Equal(held.Id, Assert.Single(store.List()).Id);
        using var reader = new StreamReader(store.OpenMessage(held.Id));
        Assert.Equal("Received: x\r\nSubject: hi\r\n\r\nEICAR\r\n", reader.ReadToEnd());
    }

    [Fact]
    public void Only_one_of_many_simultaneous_release_claims_wins()
    {
        var store = new QuarantineStore(new PosternDatabase(_dir), _dir);
        var held = Hold(store);
        var winners = 0;
        Parallel.For(0, 16, i =>
        {
            if (new QuarantineStore(new PosternDatabase(_dir), _dir).TryClaimRelease(held.Id, out _))
                Interlocked.Increment(ref winners);
        });
        Assert.Equal(1, winners);
        var claimed = store.Get(held.Id);
        Assert.Equal(QuarantineStates.Releasing, claimed.State);
        Assert.True(claimed.ReleasedAs is { } copy && QueueId.IsValid(copy), $"the claim must record the copy's queue id, got '{claimed.ReleasedAs}'");
        store.MarkReleased(held.Id, claimed.ReleasedAs!);
        Assert.Equal(QuarantineStates.Released, store.Get(held.Id).State);
        Assert.Empty(store.List());
        Assert.Throws<PosternException>(() => store.Delete(held.Id));
    }

    [Fact]
    public async Task A_release_interrupted_after_its_copy_was_spooled_is_finished_on_start_and_never_sent_again()
    {
        var held = Hold(new QuarantineStore(new PosternDatabase(_dir), _dir));

        // The crashed process: claimed, spooled the copy under the id the claim recorded, died before MarkReleased.
        var crashed = new QuarantineStore(new PosternDatabase(_dir), _dir);
        Assert.True(crashed.TryClaimRelease(held.Id, out var releaseAs));
        await using (var spool = NewSpool())
        {
            spool.Recover();
            spool.Start();
            await SpoolCopyAsync(spool, crashed, held, releaseAs);
        }

        // The next start: the spool recovers the copy (it will be delivered from there), and recovery sees it.
        await using var restarted = NewSpool();
        var recovered = restarted.Recover();
        Assert.Equal([releaseAs], recovered.Select(m => m.QueueId));
        var store = new QuarantineStore(new PosternDatabase(_dir), _dir);
        var settled = Assert.Single(store.RecoverInterruptedReleases(recovered.Select(m => m.QueueId).ToHashSet()));
        Assert.Equal((held.Id, releaseAs, true), (settled.Entry.Id, settled.ReleasedAs, settled.Finished));

        var entry = store.Get(held.Id);
        Assert.Equal((QuarantineStates.Released, releaseAs), (entry.State, entry.ReleasedAs));
        Assert.Throws<PosternException>(() => store.OpenMessage(held.Id));
        // A release asked again, before or after, finds nothing to send: the spool's copy is the only one.
        Assert.False(store.TryClaimRelease(held.Id, out _));
        Assert.Empty(store.RecoverInterruptedReleases(new HashSet<string>()));
    }

    [Fact]
    public async Task A_release_interrupted_before_its_copy_was_spooled_is_held_again_and_can_be_released()
    {
        var held = Hold(new QuarantineStore(new PosternDatabase(_dir), _dir));
        var crashed = new QuarantineStore(new PosternDatabase(_dir), _dir);
        Assert.True(crashed.TryClaimRelease(held.Id, out var releaseAs));
        // Died before the spool append completed: a torn record is cut off, so the spool recovers nothing.

        await using var restarted = NewSpool();
        var recovered = restarted.Recover();
        Assert.Empty(recovered);
        var store = new QuarantineStore(new PosternDatabase(_dir), _dir);
        var settled = Assert.Single(store.RecoverInterruptedReleases(recovered.Select(m => m.QueueId).ToHashSet()));
        Assert.Equal((held.Id, releaseAs, false), (settled.Entry.Id, settled.ReleasedAs, settled.Finished));

        var entry = store.Get(held.Id);
        Assert.Equal((QuarantineStates.Held, null), (entry.State, entry.ReleasedAs));
        Assert.Equal(held.Id, Assert.Single(store.List()).Id);
        using (var reader = new StreamReader(store.OpenMessage(held.Id)))
            Assert.Equal("Received: x\r\nSubject: hi\r\n\r\nEICAR\r\n", reader.ReadToEnd());
        // Released again, the copy gets a fresh queue id: nothing can confuse it with the one that never made it.
        Assert.True(store.TryClaimRelease(held.Id, out var again));
        Assert.NotEqual(releaseAs, again);
    }

    [Fact]
    public async Task Recovery_settles_only_releasing_entries_and_leaves_held_and_released_ones_alone()
    {
        var store = new QuarantineStore(new PosternDatabase(_dir), _dir);
        var stillHeld = Hold(store);
        var released = Hold(store);
        Assert.True(store.TryClaimRelease(released.Id, out var releasedAs));
        await using (var spool = NewSpool())
        {
            spool.Recover();
            spool.Start();
            await SpoolCopyAsync(spool, store, released, releasedAs);
            store.MarkReleased(released.Id, releasedAs);
        }

        // Even with the released copy still in the spool, nothing is settled twice and the held message keeps its file.
        Assert.Empty(store.RecoverInterruptedReleases(new HashSet<string> { releasedAs }));
        Assert.Equal(QuarantineStates.Held, store.Get(stillHeld.Id).State);
        using (store.OpenMessage(stillHeld.Id))
        {
        }
        Assert.Equal((QuarantineStates.Released, releasedAs), (store.Get(released.Id).State, store.Get(released.Id).ReleasedAs));
    }

    [Fact]
    public void Files_a_crash_left_behind_are_removed_on_start_but_held_messages_are_kept()
    {
        var store = new QuarantineStore(new PosternDatabase(_dir), _dir);
        var held = Hold(store);
        var deleted = Hold(store);
        store.Delete(deleted.Id);
        var quarantine = Path.Combine(_dir, "quarantine");
        // Crashes between the index update and the file delete, and between the file write and the index insert.
        File.WriteAllText(Path.Combine(quarantine, deleted.Id + ".eml"), "left behind");
        var unindexed = Path.Combine(quarantine, QueueId.New() + ".eml");
        File.WriteAllText(unindexed, "never acknowledged");

        store.RecoverInterruptedReleases(new HashSet<string>());

        Assert.Equal([held.Id + ".eml"], Directory.GetFiles(quarantine).Select(Path.GetFileName));
    }

    [Fact]
    public void Release_requests_stay_until_completed_so_a_crash_cannot_lose_them()
    {
        var store = new QuarantineStore(new PosternDatabase(_dir), _dir);
        var first = Hold(store);
        var second = Hold(store);
        store.RequestRelease(first.Id);
        store.RequestRelease(second.Id);

        // Read, then the process dies before acting on them: the next one sees both again.
        Assert.Equal(2, store.PendingReleaseRequests().Count);
        var pending = new QuarantineStore(new PosternDatabase(_dir), _dir).PendingReleaseRequests();
        Assert.Equal([first.Id, second.Id], pending.Select(r => r.QuarantineId));

        store.CompleteReleaseRequest(pending[0].Id);
        Assert.Equal([second.Id], store.PendingReleaseRequests().Select(r => r.QuarantineId));
    }

    private MessageSpool NewSpool() => new(Path.Combine(_dir, "spool"), NullLogger<MessageSpool>.Instance);

    /// <summary>What the release does up to the spool: the quarantined bytes appended under the id the claim recorded.</summary>
    private async Task SpoolCopyAsync(MessageSpool spool, QuarantineStore store, QuarantineEntry held, string releaseAs)
    {
        using var content = new MessageContent(spool.SpillDirectory);
        await using (var stream = store.OpenMessage(held.Id))
        {
            var bytes = new byte[held.Size];
            await stream.ReadExactlyAsync(bytes);
            await content.WriteAsync(bytes, default);
        }
        await spool.AppendAsync(held.Envelope with { QueueId = releaseAs }, ReadOnlyMemory<byte>.Empty, content, 0, default);
    }
}
