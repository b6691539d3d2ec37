using Postern.Core.Tenants;
using Postern.Smtp;

namespace Postern.Core.Relay;

/// <summary>
/// Decides at RCPT time whether an address may be relayed at all. Postern is never an open relay:
/// only a protected domain (inbound) or a tenant sender with outbound on (outbound) gets past here,
/// and the relay key at end of DATA decides the rest.
/// </summary>
public static class RecipientPolicy
{
    /// <summary>Null when the recipient may be accepted; otherwise the refusal.</summary>
    public static SmtpReply? Check(RoutingTable table, SmtpAddress sender, SmtpAddress recipient)
    {
        if (recipient.Domain.Length == 0)
            return new SmtpReply(550, "5.7.1", $"<{recipient.Address}>: relaying denied: a recipient needs a domain");
        // %-hacks, !-paths and quoted '@' ask the next hop to route again: never pass them on.
        if (recipient.LocalPart.AsSpan().IndexOfAny("@%!") >= 0)
            return new SmtpReply(550, "5.7.1", $"<{recipient.Address}>: relaying denied: routing characters in the local part");
        var domain = DomainName.Normalize(recipient.Domain);
        if (domain is null)
            return new SmtpReply(550, "5.7.1", $"<{recipient.Address}>: relaying denied: '{recipient.Domain}' is not a domain Postern relays for");
        var owner = table.OwnerOf(domain);
        if (owner is not null)
        {
            return owner.RelayEnabled
                ? null
                : new SmtpReply(550, "5.7.1", $"<{recipient.Address}>: relaying denied: the relay is not enabled for '{domain}'");
        }
        var senderOwner = SenderTenant(table, sender);
        if (senderOwner is { RelayEnabled: true, Outbound: not OutboundMode.Off })
            return null;
        return new SmtpReply(550, "5.7.1", $"<{recipient.Address}>: relaying denied: '{domain}' is not a protected domain");
    }

    /// <summary>The tenant whose domain the envelope sender is in, if any.</summary>
    public static Tenant? SenderTenant(RoutingTable table, SmtpAddress sender)
    {
        if (sender.IsNull || sender.LocalPart.AsSpan().IndexOfAny("@%!") >= 0)
            return null;
        return DomainName.Normalize(sender.Domain) is { } domain ? table.OwnerOf(domain) : null;
    }
}
