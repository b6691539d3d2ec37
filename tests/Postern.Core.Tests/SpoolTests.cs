using System.Text;
using Microsoft.Extensions.Logging.Abstractions;
using Postern.Core.Spool;

namespace Postern.Core.Tests;

public sealed class SpoolTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("postern-spool-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private MessageSpool NewSpool(long maxSegment = 64L * 1024 * 1024) => new(_dir, NullLogger<MessageSpool>.Instance, maxSegment);

    private static Envelope Envelope(params string[] recipients) => new()
    {
        QueueId = QueueId.New(),
        ReceivedAt = DateTimeOffset.UtcNow,
        TenantId = Guid.NewGuid(),
        MailFrom = "alice@contoso.test",
        Recipients = recipients.Select(r => new EnvelopeRecipient(r, RecipientRoute.Tenant)).ToArray(),
        Client = "127.0.0.1",
    };

    private async Task<SpooledMessage> AppendAsync(MessageSpool spool, Envelope envelope, string head, string body)
    {
        using var content = new MessageContent(spool.SpillDirectory);
        await content.WriteAsync(Encoding.ASCII.GetBytes(body), default);
        return await spool.AppendAsync(envelope, Encoding.ASCII.GetBytes(head), content, 0, default);
    }

    private static string Read(MessageSpool spool, SpooledMessage message)
    {
        using var stream = spool.OpenBody(message);
        using var reader = new StreamReader(stream, Encoding.ASCII);
        return reader.ReadToEnd();
    }

    [Fact]
    public async Task Appended_messages_come_back_after_restart_with_their_content()
    {
        var first = Envelope("bob@contoso.test");
        var second = Envelope("carol@contoso.test", "dave@contoso.test");
        await using (var spool = NewSpool())
        {
            spool.Recover();
            spool.Start();
            await AppendAsync(spool, first, "Received: x\r\n", "Subject: one\r\n\r\nbody one\r\n");
            await AppendAsync(spool, second, "", "Subject: two\r\n\r\nbody two\r\n");
        }
        await using var restarted = NewSpool();
        var recovered = restarted.Recover();
        Assert.Equal([first.QueueId, second.QueueId], recovered.Select(m => m.QueueId));
        Assert.Equal("Received: x\r\nSubject: one\r\n\r\nbody one\r\n", Read(restarted, recovered[0]));
        Assert.Equal(second.Recipients, recovered[1].Envelope.Recipients);
    }

    [Fact]
    public async Task Finished_messages_are_not_recovered_and_partly_finished_keep_only_pending_recipients()
    {
        var done = Envelope("bob@contoso.test");
        var partly = Envelope("carol@contoso.test", "dave@contoso.test");
        await using (var spool = NewSpool())
        {
            spool.Recover();
            spool.Start();
            var a = await AppendAsync(spool, done, "", "a\r\n");
            var b = await AppendAsync(spool, partly, "", "b\r\n");
            spool.Finish(a, [0]);
            spool.Finish(b, [1]);
        }
        await using var restarted = NewSpool();
        var recovered = restarted.Recover();
        var message = Assert.Single(recovered);
        Assert.Equal(partly.QueueId, message.QueueId);
        Assert.Equal([0], message.PendingRecipients);
    }

    [Fact]
    public async Task A_torn_record_at_the_end_is_cut_off_and_earlier_messages_survive()
    {
        var kept = Envelope("bob@contoso.test");
        await using (var spool = NewSpool())
        {
            spool.Recover();
            spool.Start();
            await AppendAsync(spool, kept, "", "kept\r\n");
        }
        var segment = Directory.GetFiles(_dir, "*.seg").Single();
        var whole = File.ReadAllBytes(segment);
        // A crash in the middle of the next write: half a record follows the complete one.
        File.AppendAllText(segment, "PSM1\u0010\0\0\0garbage");
        await using var restarted = NewSpool();
        var recovered = restarted.Recover();
        Assert.Equal(kept.QueueId, Assert.Single(recovered).QueueId);
        Assert.Equal(whole.Length, new FileInfo(segment).Length);
    }

    [Fact]
    public async Task A_segment_is_deleted_once_every_message_in_it_is_finished()
    {
        await using var spool = NewSpool(maxSegment: 10);
        spool.Recover();
        spool.Start();
        var a = await AppendAsync(spool, Envelope("bob@contoso.test"), "", new string('x', 100));
        var b = await AppendAsync(spool, Envelope("bob@contoso.test"), "", new string('y', 100));
        Assert.Equal(2, Directory.GetFiles(_dir, "*.seg").Length);
        spool.Finish(a, [0]);
        Assert.Single(Directory.GetFiles(_dir, "*.seg"));
        Assert.Equal(new string('y', 100), Read(spool, b));
    }

    [Fact]
    public async Task Concurrent_appends_share_fsyncs_and_all_survive()
    {
        var envelopes = Enumerable.Range(0, 200).Select(_ => Envelope("bob@contoso.test")).ToArray();
        await using (var spool = NewSpool())
        {
            spool.Recover();
            spool.Start();
            await Task.WhenAll(envelopes.Select(e => AppendAsync(spool, e, "", $"Subject: {e.QueueId}\r\n\r\nx\r\n")));
        }
        await using var restarted = NewSpool();
        var recovered = restarted.Recover();
        Assert.Equal(envelopes.Select(e => e.QueueId).Order(), recovered.Select(m => m.QueueId).Order());
        foreach (var message in recovered)
            Assert.Contains(message.QueueId, Read(restarted, message));
    }

    [Fact]
    public async Task Large_messages_spill_to_disk_while_received_and_are_stored_whole()
    {
        var body = new string('z', (int)MessageContent.SpillThreshold + 12345);
        await using var spool = NewSpool();
        spool.Recover();
        spool.Start();
        using var content = new MessageContent(spool.SpillDirectory);
        foreach (var chunk in body.Chunk(10000))
            await content.WriteAsync(Encoding.ASCII.GetBytes(chunk), default);
        Assert.True(content.IsSpilled);
        var stored = await spool.AppendAsync(Envelope("bob@contoso.test"), "H: 1\r\n"u8.ToArray(), content, 0, default);
        Assert.Equal("H: 1\r\n" + body, Read(spool, stored));
    }

    [Fact]
    public async Task Appends_cancelled_at_random_points_under_load_never_tear_a_record_and_every_acknowledged_message_survives()
    {
        // Callers free their buffers as soon as AppendAsync returns, as the relay does; pooled chunks are then reused
        // at once by the next message. A writer still copying a freed buffer would write a short or foreign record.
        var acknowledged = new System.Collections.Concurrent.ConcurrentDictionary<string, string>();
        var random = new Random(7);
        // A third is never cancelled, a third is cancelled the moment its request is queued (it races the writer
        // taking it), and a third by a timer at a random point up to 3 ms (while queued, being written or synced).
        // The first two do not depend on when the thread pool runs timers, which a loaded test run delays.
        var plans = Enumerable.Range(0, 600)
            .Select(i => (Envelope: Envelope("bob@contoso.test"), Size: random.Next(1, 300_000), Cancel: (CancelMode)(i % 3),
                CancelAfterUs: random.Next(0, 3000), Fill: (char)('a' + i % 26)))
            .ToArray();
        await using (var spool = NewSpool(maxSegment: 8L * 1024 * 1024))
        {
            spool.Recover();
            spool.Start();
            await Parallel.ForEachAsync(plans, new ParallelOptions { MaxDegreeOfParallelism = 16 }, async (plan, _) =>
            {
                var body = $"Subject: {plan.Envelope.QueueId}\r\n\r\n" + new string(plan.Fill, plan.Size) + "\r\n";
                var content = new MessageContent(spool.SpillDirectory);
                using var cancel = plan.Cancel == CancelMode.ByTimer ? new CancellationTokenSource(TimeSpan.FromTicks(plan.CancelAfterUs * 10)) : new CancellationTokenSource();
                try
                {
                    foreach (var piece in body.Chunk(MessageContent.ChunkSize / 2))
                        await content.WriteAsync(Encoding.ASCII.GetBytes(piece), default);
                    var append = spool.AppendAsync(plan.Envelope, Encoding.ASCII.GetBytes("Received: by test\r\n"), content, 0, cancel.Token);
                    if (plan.Cancel == CancelMode.WhenQueued)
                        cancel.Cancel();
                    await append;
                    acknowledged[plan.Envelope.QueueId] = "Received: by test\r\n" + body;
                }
                catch (OperationCanceledException) when (plan.Cancel != CancelMode.Never)
                {
                    // Not acknowledged: must not be stored either (asserted below), and never half-stored.
                }
                finally
                {
                    content.Dispose();
                }
                // Reuse the pool at once, as the next session would.
                using var scribble = new MessageContent(spool.SpillDirectory);
                await scribble.WriteAsync(Encoding.ASCII.GetBytes(new string('#', MessageContent.ChunkSize * 2)), default);
            });
        }
        // The test only means something when some were cancelled and some were not.
        Assert.InRange(acknowledged.Count, plans.Count(p => p.Cancel == CancelMode.Never), plans.Length - 1);

        var written = Directory.GetFiles(_dir, "*.seg").ToDictionary(f => f, f => new FileInfo(f).Length);
        await using var restarted = NewSpool();
        var recovered = restarted.Recover().ToDictionary(m => m.QueueId);
        // Recovery found nothing to cut off: no segment ends in a torn record.
        Assert.All(written, w => Assert.Equal(w.Value, new FileInfo(w.Key).Length));
        foreach (var (id, expected) in acknowledged)
        {
            Assert.True(recovered.TryGetValue(id, out var message), $"acknowledged message {id} was lost");
            Assert.Equal(expected, Read(restarted, message));
        }
        Assert.All(recovered.Keys, id => Assert.True(acknowledged.ContainsKey(id), $"{id} was stored although its caller was told it was cancelled"));
    }

    [Fact]
    public async Task A_batch_that_fails_half_written_is_cut_off_before_its_callers_hear_and_never_comes_back()
    {
        var earlier = Envelope("bob@contoso.test");
        var refused = new[] { Envelope("bob@contoso.test"), Envelope("bob@contoso.test"), Envelope("bob@contoso.test") };
        var later = Envelope("bob@contoso.test");
        long committed;
        await using (var spool = NewSpool())
        {
            spool.Recover();
            spool.Start();
            // The writer holds the first batch (one message) until the three below wait behind it: they are the next batch.
            using var gate = new ReadGate();
            using var first = await Content(spool, "Subject: earlier\r\n\r\nbody\r\n");
            var stored = spool.AppendAsync(earlier, gate.Memory, first, 0, default);
            await gate.Entered.WaitAsync(TimeSpan.FromSeconds(10));
            using var small = await Content(spool, "Subject: refused\r\n\r\nbody\r\n");
            // Spilled content is copied straight into the segment, which writes out the record before it in full.
            using var spilled = await Content(spool, "Subject: big\r\n\r\n" + new string('z', (int)MessageContent.SpillThreshold + 1) + "\r\n");
            Assert.True(spilled.IsSpilled);
            using var third = await Content(spool, "Subject: breaks\r\n\r\nbody\r\n");
            using var secondGate = new ReadGate();
            using var unreadable = new ReadGate(fail: true);
            var failing = new[]
            {
                spool.AppendAsync(refused[0], secondGate.Memory, small, 0, default),
                spool.AppendAsync(refused[1], ReadOnlyMemory<byte>.Empty, spilled, 0, default),
                spool.AppendAsync(refused[2], unreadable.Memory, third, 0, default),
            };
            gate.Open();
            await stored;
            // The writer is at the second batch's first message and has written none of it yet.
            await secondGate.Entered.WaitAsync(TimeSpan.FromSeconds(10));
            var segment = Directory.GetFiles(_dir, "*.seg").Single();
            committed = new FileInfo(segment).Length;
            secondGate.Open();

            foreach (var append in failing)
                await Assert.ThrowsAsync<IOException>(() => append);
            // By the time a caller hears of the failure, the complete first record of the batch is off the segment.
            Assert.Equal(committed, new FileInfo(segment).Length);
            await AppendAsync(spool, later, "", "Subject: later\r\n\r\nbody\r\n");
        }

        await using var restarted = NewSpool();
        Assert.Equal(new[] { earlier.QueueId, later.QueueId }.Order(), restarted.Recover().Select(m => m.QueueId).Order());
    }

    private static async Task<MessageContent> Content(MessageSpool spool, string body)
    {
        var content = new MessageContent(spool.SpillDirectory);
        foreach (var piece in body.Chunk(MessageContent.ChunkSize))
            await content.WriteAsync(Encoding.ASCII.GetBytes(piece), default);
        return content;
    }

    /// <summary>
    /// An empty head the writer reads when it keeps a copy of a small body: it waits there until <see cref="Open"/>,
    /// or fails as a read error would, after the records before it were written.
    /// </summary>
    private sealed class ReadGate(bool fail = false) : System.Buffers.MemoryManager<byte>
    {
        private readonly ManualResetEventSlim _open = new();
        private readonly TaskCompletionSource _entered = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public Task Entered => _entered.Task;

        public new ReadOnlyMemory<byte> Memory => CreateMemory(0);

        public void Open() => _open.Set();

        public override Span<byte> GetSpan()
        {
            if (fail)
                throw new IOException("the disk could not be read");
            _entered.TrySetResult();
            _open.Wait(TimeSpan.FromSeconds(30));
            return [];
        }

        public override System.Buffers.MemoryHandle Pin(int elementIndex = 0) => throw new NotSupportedException("an empty buffer is never written");

        public override void Unpin()
        {
        }

        protected override void Dispose(bool disposing) => _open.Dispose();
    }

    private enum CancelMode
    {
        Never,
        WhenQueued,
        ByTimer,
    }
}

