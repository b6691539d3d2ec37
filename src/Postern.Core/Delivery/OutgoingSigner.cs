using Microsoft.Extensions.Logging;
using MimeKit;
using Postern.Core.Authentication;
using Postern.Core.Configuration;
using Postern.Core.Spool;
using Postern.Core.Storage;

namespace Postern.Core.Delivery;

/// <summary>
/// The last touch before a copy leaves: mail returned to Microsoft 365 is ARC-sealed with the
/// deployment's key (its ARC-Authentication-Results carry what Postern checked), outbound mail to the
/// Internet is DKIM-signed with the tenant's active key for the From domain.
/// </summary>
public sealed class OutgoingSigner
{
    private readonly PosternOptions _options;
    private readonly SigningKeyStore _keys;
    private readonly ArcSealer _sealer;
    private readonly ILogger _logger;
    private volatile Dictionary<string, DkimKeyEntry> _activeKeys = new(StringComparer.Ordinal);

    public OutgoingSigner(PosternOptions options, DkimSigningKey arcKey, IDnsResolver dns, SigningKeyStore keys, ILogger<OutgoingSigner> logger)
    {
        _options = options;
        _keys = keys;
        _logger = logger;
        var arcDomain = options.Signing.ResolveArcDomain(options.ProductDomain);
        AuthservId = arcDomain;
        _sealer = new ArcSealer(arcKey, arcDomain, options.Signing.ArcSelector, arcDomain, new ArcChainVerifier(dns));
        ReloadKeys();
    }

    /// <summary>The authserv-id of the Authentication-Results Postern writes (and trusts only from itself).</summary>
    public string AuthservId { get; }

    /// <summary>Re-reads the DKIM keys (after `postern dkim rotate --switch`); only the active key of each domain signs, never a pending one.</summary>
    public void ReloadKeys() =>
        _activeKeys = _keys.List().Where(k => k.Active).ToDictionary(k => k.Domain, StringComparer.Ordinal);

    public async Task PrepareAsync(RawMessage message, Envelope envelope, bool toMicrosoft365, CancellationToken cancellationToken)
    {
        if (toMicrosoft365)
        {
            if (!_options.Signing.SealInbound)
                return;
            var outcome = await _sealer.SealAsync(message, ArcSealer.CollectResults(message, AuthservId), cancellationToken).ConfigureAwait(false);
            if (!outcome.Sealed)
                _logger.LogInformation("{QueueId}: not ARC-sealed: {Reason}", envelope.QueueId, outcome.Reason);
            return;
        }
        if (!_options.Signing.SignOutbound)
            return;
        var fromDomain = FromDomain(message);
        if (fromDomain is null || !_activeKeys.TryGetValue(fromDomain, out var key) || key.TenantId != envelope.TenantId)
            return;
        new DkimMessageSigner(key.Key, key.Domain, key.Selector).Sign(message);
    }

    /// <summary>The domain of the first From mailbox, lower-case; null when there is none.</summary>
    private static string? FromDomain(RawMessage message)
    {
        var value = message.Values("From").FirstOrDefault();
        if (value is null || !InternetAddressList.TryParse(value, out var list))
            return null;
        return list.Mailboxes.FirstOrDefault()?.Domain?.ToLowerInvariant();
    }
}
