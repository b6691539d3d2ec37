using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Postern.Core.Configuration;

namespace Postern.Core.Scanning.Engines;

/// <summary>
/// Scans the whole raw message with ClamAV through clamd's INSTREAM (clamd decodes MIME and opens
/// archives itself). A signature match is a <see cref="FindingKinds.Virus"/> finding named after the
/// signature; anything that keeps clamd from giving a verdict — not running, timing out, hanging up,
/// an ERROR reply such as its size limit, a message over <see cref="ClamAvOptions.MaxStreamLength"/> —
/// is an <see cref="FindingKinds.EngineUnavailable"/> finding with the reason, so that policy defers
/// the message instead of passing it unscanned.
/// </summary>
public sealed class ClamAvEngine : IScanEngine
{
    public const string EngineName = "clamav";

    private readonly ClamAvOptions options;
    private readonly ILogger logger;

    public ClamAvEngine(ClamAvOptions options, ILogger<ClamAvEngine>? logger = null)
    {
        this.options = options;
        Client = new ClamdClient(options);
        this.logger = (ILogger?)logger ?? NullLogger.Instance;
    }

    public string Name => EngineName;

    /// <summary>clamd gets the bytes as received.</summary>
    public bool ReadsRawBytesOnly => true;

    public ClamdClient Client { get; }

    public async ValueTask<IReadOnlyList<Finding>> ScanAsync(ScanContext context, CancellationToken cancellationToken)
    {
        if (context.Size > options.MaxStreamLength)
            return Unavailable(context, $"message is {context.Size:N0} bytes, more than clamd's stream limit of {options.MaxStreamLength:N0} (MaxStreamLength); not scanned");
        ClamdResult result;
        try
        {
            await using var raw = context.OpenRaw();
            result = await Client.ScanAsync(raw, cancellationToken);
        }
        catch (ClamdException e)
        {
            return Unavailable(context, e.Message);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            return Unavailable(context, $"scan failed ({e.GetType().Name}: {e.Message})");
        }

        return result.Status switch
        {
            ClamdStatus.Clean => [],
            ClamdStatus.Infected => [new Finding(EngineName, FindingKinds.Virus, $"ClamAV found {result.Signature}", Subject: result.Signature)],
            _ => Unavailable(context, $"clamd answered '{result.Reply}'"),
        };
    }

    private IReadOnlyList<Finding> Unavailable(ScanContext context, string reason)
    {
        logger.LogWarning("ClamAV could not scan {QueueId}: {Reason}", context.Envelope.QueueId, reason);
        return [new Finding(EngineName, FindingKinds.EngineUnavailable, $"ClamAV unavailable: {reason}")];
    }
}
