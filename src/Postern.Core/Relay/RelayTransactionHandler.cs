using Microsoft.Extensions.Logging;
using Postern.Core.Configuration;
using Postern.Core.Delivery;
using Postern.Core.Scanning;
using Postern.Core.Spool;
using Postern.Core.Storage;
using Postern.Core.Trace;
using Postern.Smtp;

namespace Postern.Core.Relay;

/// <summary>
/// The relay's side of SMTP: who may send to whom (RCPT), and what happens to a message at the end
/// of DATA — authenticate the tenant by its key, refuse loops, scan, spool, then answer.
/// </summary>
public sealed class RelayTransactionHandler(
    PosternOptions options,
    RoutingTableSource routing,
    MessageSpool spool,
    DeliveryScheduler scheduler,
    IMessageScanner scanner,
    Quarantine.QuarantineStore quarantine,
    TraceWriter trace,
    ILogger<RelayTransactionHandler> logger) : ISmtpTransactionHandler
{
    public ValueTask<SmtpReply> MailFromAsync(SmtpSessionInfo session, SmtpTransaction transaction, CancellationToken cancellationToken) =>
        ValueTask.FromResult(new SmtpReply(250, "2.1.0", "Sender OK"));

    public ValueTask<SmtpReply> RecipientAsync(SmtpSessionInfo session, SmtpTransaction transaction, SmtpAddress recipient, CancellationToken cancellationToken)
    {
        var refusal = RecipientPolicy.Check(routing.Current, transaction.From, recipient);
        if (refusal is not null)
            logger.LogInformation("{Session} from {Client}: refused recipient in domain {Domain}: {Reply}", session.SessionId, session.RemoteEndPoint, recipient.Domain, refusal.Code);
        return ValueTask.FromResult(refusal ?? new SmtpReply(250, "2.1.5", "Recipient OK"));
    }

    public IMessageWriter BeginMessage(SmtpSessionInfo session, SmtpTransaction transaction) =>
        new RelayMessageWriter(this, session, transaction, new MessageContent(spool.SpillDirectory));

    internal PosternOptions Options => options;
    internal RoutingTableSource Routing => routing;
    internal MessageSpool Spool => spool;
    internal DeliveryScheduler Scheduler => scheduler;
    internal IMessageScanner Scanner => scanner;
    internal Quarantine.QuarantineStore Quarantine => quarantine;
    internal TraceWriter Trace => trace;
    internal ILogger Logger => logger;
}
