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
/// The relay's side of SMTP: who may send to whom (RCPT), and, through <see cref="RelayMessageWriter"/>, the stages a
/// message goes through at the end of DATA — authenticate, cleanup, scan, dispatch — before it is answered.
/// </summary>
public sealed class RelayTransactionHandler : ISmtpTransactionHandler
{
    private readonly RoutingTableSource _routing;
    private readonly MessageSpool _spool;
    private readonly ILogger _logger;

    public RelayTransactionHandler(PosternOptions options, RoutingTableSource routing, MessageSpool spool, DeliveryScheduler scheduler, IMessageScanner scanner,
        DispatchFinisher finisher, TenantLimits limits, TraceWriter trace, ILogger<RelayTransactionHandler> logger)
    {
        _routing = routing;
        _spool = spool;
        _logger = logger;
        Authenticate = new AuthenticateStage(options);
        Limits = limits;
        Cleanup = new CleanupStage(options);
        Scan = new ScanStage(scanner);
        Dispatch = new DispatchStage(Cleanup, spool, scheduler, finisher, limits, trace, logger);
        Trace = trace;
    }

    public ValueTask<SmtpReply> MailFromAsync(SmtpSessionInfo session, SmtpTransaction transaction, CancellationToken cancellationToken) =>
        ValueTask.FromResult(new SmtpReply(250, "2.1.0", "Sender OK"));

    public ValueTask<SmtpReply> RecipientAsync(SmtpSessionInfo session, SmtpTransaction transaction, SmtpAddress recipient, CancellationToken cancellationToken)
    {
        var refusal = RecipientPolicy.Check(_routing.Current, transaction.From, recipient);
        if (refusal is not null)
            _logger.LogInformation("{Session} from {Client}: refused recipient in domain {Domain}: {Reply}", session.SessionId, session.RemoteEndPoint, recipient.Domain, refusal.Code);
        return ValueTask.FromResult(refusal ?? new SmtpReply(250, "2.1.5", "Recipient OK"));
    }

    public IMessageWriter BeginMessage(SmtpSessionInfo session, SmtpTransaction transaction) =>
        new RelayMessageWriter(this, session, transaction, new MessageContent(_spool.SpillDirectory));

    internal RoutingTableSource Routing => _routing;
    internal AuthenticateStage Authenticate { get; }
    internal TenantLimits Limits { get; }
    internal CleanupStage Cleanup { get; }
    internal ScanStage Scan { get; }
    internal DispatchStage Dispatch { get; }
    internal TraceWriter Trace { get; }
    internal ILogger Logger => _logger;
}
