using Microsoft.Extensions.Logging.Abstractions;
using Postern.Core.Authentication;
using Postern.Core.Configuration;
using Postern.Core.Relay;
using Postern.Core.Scanning;
using Postern.Core.Scanning.Engines;
using Postern.Core.Spool;
using Postern.Core.Tenants;

namespace Postern.Bench;

/// <summary>
/// The scanning pipeline `postern serve` runs with Postern:Scanning at its defaults (ClamAV and rspamd are external and
/// off) for one bench tenant (bench.test, two VIPs), fed as the relay feeds it: the received bytes in a
/// <see cref="MessageContent"/>, cleaned up (relay key removed), scanned before they are acknowledged. Shared by the in-process benchmarks.
/// </summary>
internal sealed class BenchScanning : IDisposable
{
    private readonly ScanningPipeline _pipeline;
    private readonly CleanupStage _cleanup = new(new PosternOptions());
    private readonly string _spill;

    /// <param name="dns">What the authentication checks ask.</param>
    /// <param name="authservId">The authserv-id of the Authentication-Results the checks annotate.</param>
    /// <param name="name">Names the spill directory.</param>
    public BenchScanning(IDnsResolver dns, string authservId, string name)
    {
        _spill = Directory.CreateTempSubdirectory($"{name}-").FullName;
        Table = new RoutingTable(1, [Tenant], [new ProtectedDomain("bench.test", Tenant.Id, [])],
            vips: new Dictionary<Guid, IReadOnlyList<string>> { [Tenant.Id] = ["Jane Doe", "John Smith"] });
        IScanEngine[] engines =
        [
            new AuthenticationEngine(new AuthenticationChecker(dns), authservId),
            new AttachmentTypeEngine(),
            new UrlEngine(),
            new ImpersonationEngine(),
        ];
        _pipeline = new ScanningPipeline(engines, TimeSpan.FromSeconds(60), NullLogger<ScanningPipeline>.Instance);
    }

    public Tenant Tenant { get; } = new()
    {
        Id = Guid.Parse("6f1c2a57-3a0e-4bde-9a53-1f0c2d4e5a60"),
        Name = "bench",
        Region = "eu",
        LoopToken = "0123456789abcdef0123456789abcdef",
        CreatedAt = DateTimeOffset.UtcNow,
    };

    public RoutingTable Table { get; }

    /// <summary>Scans <paramref name="data"/>, from alex@partner.example to alice@bench.test, as sent by <paramref name="client"/>.</summary>
    public async Task<ScanResult> ScanAsync(byte[] data, string client, string helo)
    {
        var envelope = new Envelope
        {
            QueueId = QueueId.New(),
            ReceivedAt = DateTimeOffset.UtcNow,
            TenantId = Tenant.Id,
            MailFrom = "alex@partner.example",
            Recipients = [new EnvelopeRecipient("alice@bench.test", RecipientRoute.Tenant)],
            Client = client,
            HeloName = helo,
        };
        using var content = new MessageContent(_spill);
        await content.WriteAsync(data, CancellationToken.None);
        var clean = _cleanup.Clean(HeaderSection.Parse(data, complete: true), content);
        return await _pipeline.ScanAsync(new ScanRequest(envelope, Tenant, clean, Table), CancellationToken.None);
    }

    public void Dispose() => Directory.Delete(_spill, recursive: true);
}
