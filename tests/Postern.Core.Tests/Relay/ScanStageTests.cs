using System.Text;
using Microsoft.Extensions.Logging.Abstractions;
using Postern.Core.Configuration;
using Postern.Core.Policy;
using Postern.Core.Relay;
using Postern.Core.Scanning;
using Postern.Core.Spool;
using Postern.Core.Tenants;
using Postern.Smtp;

namespace Postern.Core.Tests.Relay;

public sealed class ScanStageTests : IDisposable
{
    private const string Message = "X-Postern-Key: pk_secret_value\r\nFrom: a@partner.test\r\nTo: alice@contoso.test\r\nSubject: hi\r\n\r\nhello\r\n";

    private readonly string _spill = Directory.CreateTempSubdirectory("postern-scanstage-").FullName;
    private readonly Tenant _tenant = new() { Id = Guid.NewGuid(), Name = "contoso", Region = "eu", LoopToken = new string('a', 32), CreatedAt = DateTimeOffset.UtcNow };

    public void Dispose() => Directory.Delete(_spill, recursive: true);

    [Fact]
    public async Task Engines_see_the_message_without_the_relay_key_parsed_and_raw()
    {
        var engine = new RecordingEngine();
        var stage = new ScanStage(new ScanningPipeline([engine], TimeSpan.FromSeconds(30), NullLogger<ScanningPipeline>.Instance));
        using var content = Content();

        var scanned = await stage.RunAsync(Envelope("alice@contoso.test"), _tenant, Clean(content), Table(), default);

        Assert.Null(scanned.Refusal);
        Assert.False(engine.ParsedHadKey);
        Assert.Equal("hi", engine.Subject);
        Assert.DoesNotContain("X-Postern-Key", engine.Raw);
        Assert.DoesNotContain("pk_secret_value", engine.Raw);
        Assert.EndsWith("Subject: hi\r\n\r\nhello\r\n", engine.Raw);
    }

    [Fact]
    public async Task Recipients_with_different_verdicts_become_parts_and_the_first_keeps_the_queue_id()
    {
        var verdicts = new[] { Verdict.Clean, new Verdict(VerdictAction.Quarantine, "q", "found"), Verdict.Clean };
        using var content = Content();
        var envelope = Envelope("alice@contoso.test", "bob@contoso.test", "carol@contoso.test");

        var scanned = await new ScanStage(new FixedScanner(verdicts)).RunAsync(envelope, _tenant, Clean(content), Table(), default);

        Assert.Null(scanned.Refusal);
        Assert.Equal(2, scanned.Parts.Count);
        Assert.Equal(envelope.QueueId, scanned.Parts[0].Envelope.QueueId);
        Assert.Equal([0, 2], scanned.Parts[0].Indexes);
        Assert.Equal(["bob@contoso.test"], scanned.Parts[1].Envelope.Recipients.Select(r => r.Address));
        Assert.NotEqual(envelope.QueueId, scanned.Parts[1].Envelope.QueueId);
    }

    [Fact]
    public async Task A_defer_for_anyone_defers_the_message_and_a_reject_for_everyone_refuses_it()
    {
        using var content = Content();
        var envelope = Envelope("alice@contoso.test", "bob@contoso.test");
        var defer = await new ScanStage(new FixedScanner([Verdict.Clean, new Verdict(VerdictAction.Defer, "engine-down", "clamav did not answer")]))
            .RunAsync(envelope, _tenant, Clean(content), Table(), default);
        Assert.Equal(451, defer.Refusal!.Reply.Code);
        Assert.Empty(defer.Parts);

        var reject = new Verdict(VerdictAction.Reject, "no-exe", "executable", Reply: new SmtpReply(550, "5.7.1", "no executables"));
        var refused = await new ScanStage(new FixedScanner([reject, reject])).RunAsync(envelope, _tenant, Clean(content), Table(), default);
        Assert.Equal("550 5.7.1 no executables", refused.Refusal!.Reply.ToString());
    }

    [Fact]
    public async Task A_message_whose_only_header_field_was_the_key_is_still_scanned()
    {
        // Once the key is gone, nothing before the text is a header field (a DNS zone file from the MIME corpus).
        const string zone = "X-Postern-Key: pk_secret_value\r\nexample._domainkey.example.com. IN TXT (\r\n        \"v=DKIM1;p=MIGf\")\r\n";
        var engine = new RecordingEngine();
        var stage = new ScanStage(new ScanningPipeline([engine], TimeSpan.FromSeconds(30), NullLogger<ScanningPipeline>.Instance));
        using var content = Content(zone);

        var scanned = await stage.RunAsync(Envelope("alice@contoso.test"), _tenant, Clean(content, zone), Table(), default);

        Assert.Null(scanned.Refusal);
        Assert.Equal(VerdictAction.Deliver, Assert.Single(scanned.Parts).Verdict.Action);
        Assert.StartsWith("example._domainkey.example.com. IN TXT", engine.Raw);
    }

    private MessageContent Content(string message = Message)
    {
        var content = new MessageContent(_spill);
        content.WriteAsync(Encoding.ASCII.GetBytes(message), default).AsTask().GetAwaiter().GetResult();
        return content;
    }

    private static CleanMessage Clean(MessageContent content, string message = Message) =>
        new CleanupStage(new PosternOptions()).Clean(HeaderSection.Parse(Encoding.ASCII.GetBytes(message), complete: true), content);

    private RoutingTable Table() => new(1, [_tenant], [new ProtectedDomain("contoso.test", _tenant.Id, [])]);

    private Envelope Envelope(params string[] recipients) => new()
    {
        QueueId = QueueId.New(),
        ReceivedAt = DateTimeOffset.UtcNow,
        TenantId = _tenant.Id,
        MailFrom = "a@partner.test",
        Recipients = recipients.Select(r => new EnvelopeRecipient(r, RecipientRoute.Tenant)).ToArray(),
        Client = "127.0.0.1",
    };

    /// <summary>A built-in engine's view: what it finds in the parsed message and in the raw bytes.</summary>
    private sealed class RecordingEngine : IScanEngine
    {
        public bool ParsedHadKey { get; private set; } = true;
        public string? Subject { get; private set; }
        public string Raw { get; private set; } = "";

        public string Name => "recording";

        public ValueTask<IReadOnlyList<Finding>> ScanAsync(ScanContext context, CancellationToken cancellationToken)
        {
            ParsedHadKey = context.Message.Headers.Contains("X-Postern-Key");
            Subject = context.Message.Subject;
            using (var raw = context.OpenRaw())
                Raw = new StreamReader(raw, Encoding.ASCII).ReadToEnd();
            return ValueTask.FromResult<IReadOnlyList<Finding>>([]);
        }
    }

    private sealed class FixedScanner(IReadOnlyList<Verdict> verdicts) : IMessageScanner
    {
        public ValueTask<ScanResult> ScanAsync(ScanRequest request, CancellationToken cancellationToken) => ValueTask.FromResult(new ScanResult([], verdicts));
    }
}
