using Microsoft.Extensions.Logging;
using MimeKit;
using Postern.Core.Policy;

namespace Postern.Core.Scanning;

/// <summary>
/// Runs every engine over the message (parsed once; engines that read the parsed message one at a time, those
/// on the raw bytes alongside them), then the tenant's policy
/// per recipient. An engine that throws or overruns its time becomes an "engine unavailable"
/// finding, which the default policy defers: Postern never passes a message it could not scan.
/// </summary>
public sealed class ScanningPipeline(IReadOnlyList<IScanEngine> engines, TimeSpan engineTimeout, ILogger<ScanningPipeline> logger) : IMessageScanner
{
    public async ValueTask<ScanResult> ScanAsync(ScanRequest request, CancellationToken cancellationToken)
    {
        var message = await ParseAsync(request.Message, cancellationToken).ConfigureAwait(false);
        var domains = request.Table.DomainsOf(request.Tenant.Id);
        var context = new ScanContext
        {
            Envelope = request.Envelope,
            Tenant = request.Tenant,
            Message = message,
            OpenRaw = () => request.Message.OpenRead(),
            OpenBody = () => request.Message.Content.OpenRead(request.Message.BodyOffset),
            Size = request.Message.Length,
            TenantDomains = domains,
            Vips = request.Table.VipsOf(request.Tenant.Id),
        };
        // Engines on the raw bytes (clamd, rspamd) run alongside; those on the shared parsed message, one at a time.
        var results = new Task<IReadOnlyList<Finding>>[engines.Count];
        for (var i = 0; i < engines.Count; i++)
        {
            if (engines[i].ReadsRawBytesOnly)
                results[i] = RunAsync(engines[i], context, cancellationToken);
        }
        for (var i = 0; i < engines.Count; i++)
        {
            if (!engines[i].ReadsRawBytesOnly)
                results[i] = Task.FromResult(await RunAsync(engines[i], context, cancellationToken).ConfigureAwait(false));
        }
        var findings = (await Task.WhenAll(results).ConfigureAwait(false)).SelectMany(r => r).ToArray();
        var evaluator = new PolicyEvaluator(request.Table.RulesOf(request.Tenant.Id));
        var verdicts = request.Envelope.Recipients.Select(r => evaluator.Evaluate(context, findings, r)).ToArray();
        return new ScanResult(findings, verdicts) { Headers = context.Annotations };
    }

    /// <summary>
    /// The message parsed once for every engine. Text that does not start with a header field (MimeKit refuses it) is
    /// read as a message without header fields whose body is all of it, so the engines still see every byte.
    /// </summary>
    private static async Task<MimeMessage> ParseAsync(Spool.CleanMessage clean, CancellationToken cancellationToken)
    {
        try
        {
            await using var stream = clean.OpenRead();
            // In memory (up to 4 MB) the parser never waits: parsed synchronously, without the async parser's overhead.
            return clean.Content.IsSpilled
                ? await MimeMessage.LoadAsync(stream, cancellationToken).ConfigureAwait(false)
                : MimeMessage.Load(stream, cancellationToken);
        }
        catch (FormatException)
        {
            await using var stream = new MimeKit.IO.ChainedStream();
            stream.Add(new MemoryStream("\r\n"u8.ToArray(), writable: false));
            stream.Add(clean.OpenRead());
            return await MimeMessage.LoadAsync(stream, cancellationToken).ConfigureAwait(false);
        }
    }

    private async Task<IReadOnlyList<Finding>> RunAsync(IScanEngine engine, ScanContext context, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(engineTimeout);
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        IReadOnlyList<Finding>? findings = null;
        try
        {
            findings = await engine.ScanAsync(context, timeout.Token).ConfigureAwait(false);
            return findings;
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return [new Finding(engine.Name, FindingKinds.EngineUnavailable, $"{engine.Name} did not answer within {engineTimeout.TotalSeconds:0} s")];
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            logger.LogWarning(ex, "{QueueId}: engine {Engine} failed", context.Envelope.QueueId, engine.Name);
            return [new Finding(engine.Name, FindingKinds.EngineUnavailable, $"{engine.Name} failed: {ex.GetType().Name}")];
        }
        finally
        {
            if (!cancellationToken.IsCancellationRequested)
                Telemetry.PosternMetrics.Scanned(engine.Name, System.Diagnostics.Stopwatch.GetElapsedTime(started),
                    findings is null || findings.Any(f => f.Kind == FindingKinds.EngineUnavailable));
        }
    }
}
