using Microsoft.Extensions.Logging.Abstractions;
using Postern.Core.Configuration;
using Postern.Core.Relay;
using Postern.Core.Scanning;
using Postern.Core.Spool;
using Postern.Core.Tenants;

namespace Postern.Core.Tests.Scanning;

public sealed class ScanningPipelineTests : IDisposable
{
    private readonly string _spill = Directory.CreateTempSubdirectory("postern-pipeline-").FullName;

    public void Dispose() => Directory.Delete(_spill, recursive: true);

    [Fact]
    public async Task Engines_that_read_the_parsed_message_never_run_at_the_same_time_and_findings_keep_engine_order()
    {
        // MimeKit loads header-backed properties lazily and content streams share a position, so two engines
        // reading the one parsed message at once race (seen as "Collection was modified" in the impersonation check).
        var parsedRunning = 0;
        var parsedPeak = 0;
        var gate = new object();
        var parsed = Enumerable.Range(0, 3).Select(i => new YieldingEngine($"parsed-{i}", rawOnly: false, () =>
        {
            lock (gate)
                parsedPeak = Math.Max(parsedPeak, ++parsedRunning);
        }, () =>
        {
            lock (gate)
                parsedRunning--;
        })).ToList();
        var raw = new YieldingEngine("raw", rawOnly: true, () => { }, () => { }, yields: 200);
        var pipeline = new ScanningPipeline([raw, .. parsed], TimeSpan.FromSeconds(30), NullLogger<ScanningPipeline>.Instance);

        var result = await pipeline.ScanAsync(Request("From: a@partner.test\r\nTo: alice@contoso.test\r\nSubject: hi\r\n\r\nhello\r\n"u8.ToArray()), default);

        Assert.Equal(1, parsedPeak);
        Assert.Equal(["raw", "parsed-0", "parsed-1", "parsed-2"], result.Findings.Select(f => f.Engine));
    }

    private ScanRequest Request(byte[] message)
    {
        var tenant = new Tenant { Id = Guid.NewGuid(), Name = "contoso", Region = "eu", LoopToken = new string('a', 32), CreatedAt = DateTimeOffset.UtcNow };
        var table = new RoutingTable(1, [tenant], [new ProtectedDomain("contoso.test", tenant.Id, [])]);
        var envelope = new Envelope
        {
            QueueId = QueueId.New(),
            ReceivedAt = DateTimeOffset.UtcNow,
            TenantId = tenant.Id,
            MailFrom = "a@partner.test",
            Recipients = [new EnvelopeRecipient("alice@contoso.test", RecipientRoute.Tenant)],
            Client = "127.0.0.1",
        };
        var content = new MessageContent(_spill);
        content.WriteAsync(message, default).AsTask().GetAwaiter().GetResult();
        return new ScanRequest(envelope, tenant, new CleanupStage(new PosternOptions()).Clean(HeaderSection.Parse(message, complete: true), content), table);
    }

    /// <summary>An engine that yields many times while "reading", so another engine started meanwhile would overlap it.</summary>
    private sealed class YieldingEngine(string name, bool rawOnly, Action enter, Action leave, int yields = 20) : IScanEngine
    {
        public string Name => name;

        public bool ReadsRawBytesOnly => rawOnly;

        public async ValueTask<IReadOnlyList<Finding>> ScanAsync(ScanContext context, CancellationToken cancellationToken)
        {
            enter();
            for (var i = 0; i < yields; i++)
                await Task.Yield();
            leave();
            return [new Finding(name, "test", "scanned")];
        }
    }
}
