using System.Buffers;
using Postern.Core.Tenants;
using Postern.Smtp;

namespace Postern.Core.Relay;

// The relay key, checked as soon as the header section is in (the early key check of issue 7).
internal sealed partial class RelayMessageWriter
{
    /// <summary>
    /// The header section is complete: check the relay key now rather than at the end of DATA. Without a valid key for
    /// these recipients the message is refused (and recorded) at once, and the server reads and discards the rest, so a
    /// client with no key cannot make Postern hold or spill a large message. <see cref="CompleteAsync"/> checks again.
    /// </summary>
    public ValueTask<SmtpReply?> HeaderSectionCompleteAsync(CancellationToken cancellationToken)
    {
        var length = (int)Math.Min(content.Length, MaxHeaderSection);
        var prefix = ArrayPool<byte>.Shared.Rent(Math.Max(length, 1));
        try
        {
            content.CopyPrefix(prefix.AsSpan(0, length));
            // The server saw the empty line; a section larger than the relay's own limit is left to CompleteAsync.
            if (HeaderSection.Parse(prefix.AsSpan(0, length), complete: false) is not { } headers)
                return ValueTask.FromResult<SmtpReply?>(null);
            AuthenticateKey(headers, relay.Routing.Current, out var refusal);
            return ValueTask.FromResult(refusal);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(prefix);
        }
    }

    /// <summary>The tenant that the header section's relay key authenticates for this envelope; else null, with the refusal (already recorded).</summary>
    private Tenant? AuthenticateKey(HeaderSection headers, RoutingTable table, out SmtpReply? refusal)
    {
        var keyHeader = relay.Options.HeaderPrefix + "Key";
        var keys = headers.Values(keyHeader).Distinct(StringComparer.Ordinal).ToArray();
        refusal = keys.Length switch
        {
            0 => Refuse(headers, new SmtpReply(550, "5.7.1", $"Relaying denied: no {keyHeader} header (is the Exchange Online rule setting it?)"), "relay key missing"),
            > 1 => Refuse(headers, new SmtpReply(550, "5.7.1", $"Relaying denied: conflicting {keyHeader} headers"), "several relay keys"),
            _ => null,
        };
        if (refusal is not null)
            return null;
        var tenant = Authenticate(table, RelayKey.Hash(keys[0]));
        if (tenant is null)
            refusal = Refuse(headers, new SmtpReply(550, "5.7.1", "Relaying denied: the relay key is not valid for these recipients"), "relay key not valid");
        return tenant;
    }
}
