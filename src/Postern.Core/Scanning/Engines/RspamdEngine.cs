using System.Net;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Postern.Core.Configuration;

namespace Postern.Core.Scanning.Engines;

/// <summary>
/// Asks rspamd for a spam verdict over HTTP (<c>/checkv2</c>). Always gives a
/// <see cref="FindingKinds.SpamScore"/> finding carrying the score (policy can set its own thresholds),
/// and a <see cref="FindingKinds.Spam"/> finding when rspamd's action is "reject", "add header" or
/// "rewrite subject" — the actions that mean "this is spam" rather than "slow down" (greylist,
/// soft reject), which make no sense for mail Microsoft 365 already accepted. When rspamd cannot
/// answer, the finding is <see cref="FindingKinds.EngineUnavailable"/>, never a silent pass.
/// </summary>
public sealed class RspamdEngine : IScanEngine, IDisposable
{
    public const string EngineName = "rspamd";

    /// <summary>rspamd actions that make a message spam.</summary>
    public static readonly IReadOnlySet<string> SpamActions = new HashSet<string>(StringComparer.OrdinalIgnoreCase) { "reject", "add header", "rewrite subject" };

    private const int SymbolsInReason = 10;
    private readonly RspamdOptions options;
    private readonly ILogger logger;

    public RspamdEngine(RspamdOptions options, ILogger<RspamdEngine>? logger = null, HttpMessageHandler? handler = null)
    {
        this.options = options;
        Client = new RspamdClient(options, handler);
        this.logger = (ILogger?)logger ?? NullLogger.Instance;
    }

    public string Name => EngineName;

    /// <summary>rspamd gets the bytes as received.</summary>
    public bool ReadsRawBytesOnly => true;

    public RspamdClient Client { get; }

    public async ValueTask<IReadOnlyList<Finding>> ScanAsync(ScanContext context, CancellationToken cancellationToken)
    {
        if (context.Size > options.MaxMessageSize)
            return Unavailable(context, $"message is {context.Size:N0} bytes, more than MaxMessageSize {options.MaxMessageSize:N0}; not scanned");
        var envelope = context.Envelope;
        var request = new RspamdRequest(
            Ip: IPAddress.TryParse(envelope.Client, out var ip) ? ip.ToString() : null,
            Helo: envelope.HeloName,
            From: envelope.MailFrom,
            Recipients: envelope.Recipients.Select(r => r.Address).ToList(),
            QueueId: envelope.QueueId);
        RspamdResult result;
        try
        {
            await using var raw = context.OpenRaw();
            result = await Client.CheckAsync(raw, request, cancellationToken);
        }
        catch (RspamdException e)
        {
            return Unavailable(context, e.Message);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            return Unavailable(context, $"check failed ({e.GetType().Name}: {e.Message})");
        }
        return ToFindings(result);
    }

    /// <summary>The findings for one rspamd result.</summary>
    public static IReadOnlyList<Finding> ToFindings(RspamdResult result)
    {
        var score = $"score {RspamdClient.Format(result.Score)} / {RspamdClient.Format(result.RequiredScore)}";
        var findings = new List<Finding>
        {
            new(EngineName, FindingKinds.SpamScore, $"rspamd {score}, action '{result.Action}'", result.Score),
        };
        if (SpamActions.Contains(result.Action))
        {
            var symbols = string.Join(", ", result.Symbols.Take(SymbolsInReason).Select(s => $"{s.Name}({RspamdClient.Format(s.Score)})"));
            if (result.Symbols.Count > SymbolsInReason)
                symbols += $", +{result.Symbols.Count - SymbolsInReason} more";
            var message = string.IsNullOrWhiteSpace(result.SmtpMessage) ? "" : $" \"{result.SmtpMessage}\"";
            findings.Add(new Finding(EngineName, FindingKinds.Spam,
                $"rspamd: {result.Action} ({score}){message}; symbols: {(symbols.Length == 0 ? "none" : symbols)}",
                result.Score, result.Symbols.FirstOrDefault()?.Name));
        }
        return findings;
    }

    private IReadOnlyList<Finding> Unavailable(ScanContext context, string reason)
    {
        logger.LogWarning("rspamd could not check {QueueId}: {Reason}", context.Envelope.QueueId, reason);
        return [new Finding(EngineName, FindingKinds.EngineUnavailable, $"rspamd unavailable: {reason}")];
    }

    public void Dispose() => Client.Dispose();
}
