using System.Text;
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
        Parallel.For(0, 16, _ =>
        {
            if (new QuarantineStore(new PosternDatabase(_dir), _dir).TryClaimRelease(held.Id))
                Interlocked.Increment(ref winners);
        });
        Assert.Equal(1, winners);
        store.MarkReleased(held.Id, "NEWID");
        Assert.Equal(QuarantineStates.Released, store.Get(held.Id).State);
        Assert.Empty(store.List());
        Assert.Throws<PosternException>(() => store.Delete(held.Id));
    }
}
