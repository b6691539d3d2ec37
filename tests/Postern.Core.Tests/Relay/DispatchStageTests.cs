using System.Net;
using System.Text;
using Microsoft.Extensions.Logging.Abstractions;
using Postern.Core.Authentication;
using Postern.Core.Certificates;
using Postern.Core.Configuration;
using Postern.Core.Delivery;
using Postern.Core.Policy;
using Postern.Core.Quarantine;
using Postern.Core.Relay;
using Postern.Core.Scanning;
using Postern.Core.Spool;
using Postern.Core.Storage;
using Postern.Core.Tenants;
using Postern.Core.Trace;
using Postern.Smtp;

namespace Postern.Core.Tests.Relay;

/// <summary>
/// Dispatch is all or nothing towards the client: the message is stored once, answered 250, and its parts (a copy,
/// the quarantine, a DSN) are derived from that record — also when a part fails half-way or the process dies.
/// </summary>
public sealed class DispatchStageTests : IAsyncLifetime
{
    private const string Message = "From: ceo@contoso.test\r\nTo: alice@contoso.test\r\nSubject: Quarterly\r\n\r\nNumbers.\r\n";

    private readonly string _dir = Directory.CreateTempSubdirectory("postern-dispatch-").FullName;
    private readonly PosternOptions _options;
    private readonly PosternDatabase _database;
    private Tenant _tenant = null!;
    private Node _node = null!;

    public DispatchStageTests()
    {
        _options = new PosternOptions { DataDir = _dir }.ApplyDefaults();
        _database = new PosternDatabase(_dir);
    }

    public async Task InitializeAsync()
    {
        var store = new TenantStore(_database);
        _tenant = store.AddTenant("contoso", Guid.NewGuid(), "eu", createdBefore2023: false);
        store.AddDomain(_tenant, "contoso.test", [new MtaAddress("127.0.0.1", 9)]);
        _node = await Node.StartAsync(_options, _database);
    }

    public async Task DisposeAsync()
    {
        await _node.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public async Task One_part_to_deliver_is_spooled_as_its_copy_and_answered_with_its_queue_id()
    {
        using var content = Content();
        var envelope = Envelope("alice@contoso.test");

        var reply = await _node.DispatchAsync(envelope, content, [Verdict.Clean]);

        Assert.Equal($"250 2.0.0 Ok: queued as {envelope.QueueId}", reply.ToString());
        var copy = Assert.Single(await _node.RestartAsync());
        Assert.Equal(envelope.QueueId, copy.QueueId);
        Assert.Null(copy.Envelope.Dispatch);
    }

    [Fact]
    public async Task A_quarantine_that_fails_between_parts_still_answers_250_and_each_part_is_handed_on_once_when_it_clears()
    {
        using var content = Content();
        var envelope = Envelope("alice@contoso.test", "bob@contoso.test", "carol@contoso.test");
        var verdicts = new[] { Verdict.Clean, new Verdict(VerdictAction.Quarantine, "quarantine-malware", "EICAR"), new Verdict(VerdictAction.Reject, "no-exe", "executable") };
        // The fault of the issue: SQLite refusing the quarantine insert after another part was already spooled.
        Execute("CREATE TRIGGER refuse_quarantine BEFORE INSERT ON quarantine BEGIN SELECT RAISE(ABORT, 'injected fault'); END;");

        var reply = await _node.DispatchAsync(envelope, content, verdicts);
        Assert.Equal($"250 2.0.0 Ok: queued as {envelope.QueueId}", reply.ToString());

        // What was acknowledged is one record; the finisher hands its parts on.
        var record = Assert.Single(await _node.RestartAsync());
        Assert.NotNull(record.Envelope.Dispatch);
        await Assert.ThrowsAnyAsync<Exception>(() => _node.Finisher.FinishAsync(record, null, [], default));
        Assert.Empty(_node.Quarantine.List());
        // Alice's copy is spooled; Bob's and Carol's parts wait in the record.
        Assert.Equal(["bob@contoso.test", "carol@contoso.test"], record.PendingRecipients.Select(i => record.Envelope.Recipients[i].Address));

        // The process dies here; the next one finds the record and Alice's copy, and the fault is gone.
        var recovered = await _node.RestartAsync();
        Assert.Equal(2, recovered.Count);
        Execute("DROP TRIGGER refuse_quarantine;");
        await _node.RecoverAsync(recovered);

        var held = Assert.Single(_node.Quarantine.List());
        Assert.Equal(["bob@contoso.test"], held.Envelope.Recipients.Select(r => r.Address));
        var spooled = await _node.RestartAsync();
        var copy = Assert.Single(spooled, m => !m.Envelope.IsBounce);
        Assert.Equal(envelope.QueueId, copy.QueueId);
        Assert.Equal(["alice@contoso.test"], copy.Envelope.Recipients.Select(r => r.Address));
        var dsn = Assert.Single(spooled, m => m.Envelope.IsBounce);
        Assert.Equal(["ceo@contoso.test"], dsn.Envelope.Recipients.Select(r => r.Address));
        // The record itself is finished: nothing of it is left to redo.
        Assert.Equal(2, spooled.Count);
    }

    [Fact]
    public async Task A_copy_spooled_just_before_a_crash_is_not_spooled_again()
    {
        using var content = Content();
        var envelope = Envelope("alice@contoso.test", "bob@contoso.test");
        await _node.DispatchAsync(envelope, content, [new Verdict(VerdictAction.Tag, "tag", "x", "[X]"), Verdict.Clean]);
        var record = Assert.Single(await _node.RestartAsync());
        var bobsId = record.Envelope.Dispatch!.Parts[1].QueueId;
        // As if the process died after the copy's fsync and before the record said so.
        await _node.Spool.AppendAsync(record.Envelope with { QueueId = bobsId, Recipients = [record.Envelope.Recipients[1]], Dispatch = null },
            ReadOnlyMemory<byte>.Empty, content, 0, default);

        var recovered = await _node.RestartAsync();
        await _node.RecoverAsync(recovered);

        var copies = (await _node.RestartAsync()).Select(m => (m.QueueId, Recipient: m.Envelope.Recipients.Single().Address)).Order().ToList();
        Assert.Equal(new[] { (envelope.QueueId, "alice@contoso.test"), (bobsId, "bob@contoso.test") }.Order(), copies);
    }

    private MessageContent Content()
    {
        var content = new MessageContent(Path.Combine(_dir, "incoming-test"));
        content.WriteAsync(Encoding.ASCII.GetBytes(Message), default).AsTask().GetAwaiter().GetResult();
        return content;
    }

    private Envelope Envelope(params string[] recipients) => new()
    {
        QueueId = QueueId.New(),
        ReceivedAt = DateTimeOffset.UtcNow,
        TenantId = _tenant.Id,
        MailFrom = "ceo@contoso.test",
        Recipients = recipients.Select(r => new EnvelopeRecipient(r, RecipientRoute.Tenant)).ToArray(),
        Client = "127.0.0.1",
    };

    private void Execute(string sql)
    {
        using var connection = _database.Open();
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        command.ExecuteNonQuery();
    }

    /// <summary>The relay's back half on one data directory; delivery is never started, so what is spooled stays there to be counted.</summary>
    private sealed class Node : IAsyncDisposable
    {
        private readonly PosternOptions _options;
        private readonly PosternDatabase _database;
        private readonly CleanupStage _cleanup;
        private TraceWriter _trace = null!;
        private DeliveryScheduler _scheduler = null!;
        private SmtpDeliveryAgent _agent = null!;
        private DispatchStage _dispatch = null!;

        private Node(PosternOptions options, PosternDatabase database)
        {
            _options = options;
            _database = database;
            _cleanup = new CleanupStage(options);
            Quarantine = new QuarantineStore(database, options.DataDir);
        }

        public MessageSpool Spool { get; private set; } = null!;
        public QuarantineStore Quarantine { get; }
        public DispatchFinisher Finisher { get; private set; } = null!;

        public static async Task<Node> StartAsync(PosternOptions options, PosternDatabase database)
        {
            var node = new Node(options, database);
            await node.OpenAsync();
            return node;
        }

        /// <summary>Runs dispatch as the relay would after a scan with these verdicts; the finisher is not running, so nothing after the 250 happens yet.</summary>
        public async Task<SmtpReply> DispatchAsync(Envelope envelope, MessageContent content, IReadOnlyList<Verdict> verdicts)
        {
            var clean = _cleanup.Clean(HeaderSection.Parse(Encoding.ASCII.GetBytes(Message), complete: true), content);
            var scan = new ScanResult([], verdicts);
            var session = new SmtpSessionInfo
            {
                SessionId = "test",
                Listener = new SmtpListenerOptions { EndPoint = new IPEndPoint(IPAddress.Loopback, 25) },
                RemoteEndPoint = new IPEndPoint(IPAddress.Loopback, 40000),
                LocalEndPoint = new IPEndPoint(IPAddress.Loopback, 25),
            };
            var traceFields = _cleanup.TraceFields(envelope.QueueId, envelope.ReceivedAt, envelope.Recipients, session, false, []);
            return await _dispatch.RunAsync(envelope, "contoso", clean, traceFields, new ScannedMessage(scan, ScanStage.Split(envelope, scan), null), false, default);
        }

        /// <summary>Stops everything (as a crash would, the spool keeps what it has) and reads the spool back as the next start does.</summary>
        public async Task<IReadOnlyList<SpooledMessage>> RestartAsync()
        {
            await CloseAsync();
            await OpenAsync();
            return _recovered;
        }

        /// <summary>The next start's dispatch recovery, run to its end.</summary>
        public async Task RecoverAsync(IReadOnlyList<SpooledMessage> recovered)
        {
            var ids = recovered.Select(m => m.QueueId).ToHashSet(StringComparer.Ordinal);
            foreach (var record in recovered.Where(m => m.Envelope.Dispatch is not null && m.PendingRecipients.Count > 0))
                await Finisher.FinishAsync(record, null, new HashSet<string>(ids), default);
        }

        private IReadOnlyList<SpooledMessage> _recovered = [];

        private async Task OpenAsync()
        {
            Spool = new MessageSpool(Path.Combine(_options.DataDir, "spool"), NullLogger<MessageSpool>.Instance);
            _recovered = Spool.Recover();
            Spool.Start();
            _trace = new TraceWriter(_database, NullLogger<TraceWriter>.Instance);
            var mx = new MxResolver(new DnsClientResolver(_options.Dns));
            _agent = new SmtpDeliveryAgent(_options, mx, NullLogger<SmtpDeliveryAgent>.Instance);
            var routing = new RoutingTableSource(new TenantStore(_database), NullLogger<RoutingTableSource>.Instance);
            routing.Load();
            _scheduler = new DeliveryScheduler(_options, Spool, _agent, mx, routing,
                new RegionCertificates(_options, NullLogger<RegionCertificates>.Instance), _trace, NullLogger<DeliveryScheduler>.Instance);
            var limits = new TenantLimits(_options.TenantLimits, Spool);
            Finisher = new DispatchFinisher(_cleanup, Spool, _scheduler, Quarantine, limits, _trace, NullLogger<DispatchFinisher>.Instance);
            _dispatch = new DispatchStage(_cleanup, Spool, _scheduler, Finisher, limits, _trace, NullLogger.Instance);
            await Task.CompletedTask;
        }

        private async Task CloseAsync()
        {
            await Finisher.DisposeAsync();
            await _scheduler.DisposeAsync();
            await _agent.DisposeAsync();
            await Spool.DisposeAsync();
            await _trace.DisposeAsync();
        }

        public async ValueTask DisposeAsync() => await CloseAsync();
    }
}
