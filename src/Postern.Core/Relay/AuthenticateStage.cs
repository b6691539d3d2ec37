using Postern.Core.Configuration;
using Postern.Core.Spool;
using Postern.Core.Tenants;
using Postern.Smtp;

namespace Postern.Core.Relay;

/// <summary>A message whose tenant its relay key proved, and where each recipient goes for that tenant.</summary>
public sealed record AuthenticatedMessage(Tenant Tenant, IReadOnlyList<EnvelopeRecipient> Recipients);

/// <summary>
/// The first stage at the end of DATA: whose message is this, and may it pass? Counts hops, finds the tenant by its
/// relay key (compared by SHA-256 hash in constant time), refuses the tenant's own loop token, and routes every
/// recipient, refusing one the tenant may not send to. Reads only the received header section.
/// </summary>
public sealed class AuthenticateStage(PosternOptions options)
{
    /// <summary>The relay key field, {HeaderPrefix}Key.</summary>
    public string KeyHeader => options.HeaderPrefix + "Key";

    /// <summary>The tenant and routed recipients; null, with the reason in <paramref name="refusal"/>, when the message may not pass.</summary>
    public AuthenticatedMessage? Run(HeaderSection headers, SmtpTransaction transaction, RoutingTable table, out Refusal? refusal)
    {
        refusal = null;
        var hops = headers.Count("Received");
        if (hops > options.MaxReceivedHeaders)
        {
            refusal = new Refusal(new SmtpReply(554, "5.4.6", $"Mail loop detected: {hops} Received headers (limit {options.MaxReceivedHeaders})"), $"loop: {hops} hops");
            return null;
        }
        var keys = headers.Values(KeyHeader).Distinct(StringComparer.Ordinal).ToArray();
        if (keys.Length != 1)
        {
            refusal = keys.Length == 0
                ? new Refusal(new SmtpReply(550, "5.7.1", $"Relaying denied: no {KeyHeader} header (is the Exchange Online rule setting it?)"), "relay key missing")
                : new Refusal(new SmtpReply(550, "5.7.1", $"Relaying denied: conflicting {KeyHeader} headers"), "several relay keys");
            return null;
        }
        var tenant = FindTenant(table, transaction, RelayKey.Hash(keys[0]));
        if (tenant is null)
        {
            refusal = new Refusal(new SmtpReply(550, "5.7.1", "Relaying denied: the relay key is not valid for these recipients"), "relay key not valid");
            return null;
        }
        var loopHeader = options.HeaderPrefix + "Loop";
        if (headers.Values(loopHeader).Any(token => token == tenant.LoopToken || (tenant.PreviousLoopToken is { } previous && token == previous)))
        {
            refusal = new Refusal(new SmtpReply(554, "5.4.6", "Mail loop detected: this message already passed through Postern for this tenant"),
                "loop: tenant loop token present", tenant);
            return null;
        }
        var recipients = Route(table, transaction, tenant, out var routeError);
        if (recipients is null)
        {
            refusal = new Refusal(routeError!, "recipient not allowed for tenant", tenant);
            return null;
        }
        return new AuthenticatedMessage(tenant, recipients);
    }

    /// <summary>The tenant whose current (or still valid previous) key matches, among the tenants this envelope involves.</summary>
    private static Tenant? FindTenant(RoutingTable table, SmtpTransaction transaction, byte[] keyHash)
    {
        var candidates = new List<Tenant>();
        if (RecipientPolicy.SenderTenant(table, transaction.From) is { } sender)
            candidates.Add(sender);
        foreach (var recipient in transaction.Recipients)
            if (DomainName.Normalize(recipient.Domain) is { } domain && table.OwnerOf(domain) is { } owner && !candidates.Contains(owner))
                candidates.Add(owner);
        var now = DateTimeOffset.UtcNow;
        Tenant? match = null;
        foreach (var tenant in candidates)
        {
            // Compare against every candidate so timing does not tell which tenant matched.
            var current = RelayKey.Matches(keyHash, tenant.RelayKeyHash);
            var previous = tenant.PreviousRelayKeyExpires > now && RelayKey.Matches(keyHash, tenant.PreviousRelayKeyHash);
            if ((current | previous) && match is null)
                match = tenant;
        }
        return match;
    }

    /// <summary>Where each recipient goes for this tenant; null (with the refusal) when one is not the tenant's to send.</summary>
    private static List<EnvelopeRecipient>? Route(RoutingTable table, SmtpTransaction transaction, Tenant tenant, out SmtpReply? error)
    {
        error = null;
        var senderIsTenant = RecipientPolicy.SenderTenant(table, transaction.From)?.Id == tenant.Id;
        var result = new List<EnvelopeRecipient>(transaction.Recipients.Count);
        foreach (var recipient in transaction.Recipients)
        {
            var domain = DomainName.Normalize(recipient.Domain);
            if (domain is not null && table.OwnerOf(domain)?.Id == tenant.Id)
            {
                result.Add(new EnvelopeRecipient(recipient.LocalPart + "@" + domain, RecipientRoute.Tenant));
                continue;
            }
            if (domain is null || !senderIsTenant || tenant.Outbound == OutboundMode.Off)
            {
                error = new SmtpReply(550, "5.7.1", $"Relaying denied: <{recipient.Address}> is not a recipient tenant '{tenant.Name}' may send to through Postern");
                return null;
            }
            var route = tenant.Outbound == OutboundMode.ViaM365 ? RecipientRoute.ViaM365 : RecipientRoute.Mx;
            result.Add(new EnvelopeRecipient(recipient.LocalPart + "@" + domain, route));
        }
        return result;
    }
}
