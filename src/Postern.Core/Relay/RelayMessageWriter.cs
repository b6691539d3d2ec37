using System.Buffers;
using Postern.Core.Spool;
using Postern.Core.Tenants;
using Postern.Core.Trace;
using Postern.Smtp;

namespace Postern.Core.Relay;

/// <summary>
/// Collects one message's content and runs the relay's stages in the order a message meets them:
/// <see cref="AuthenticateStage"/> (whose is it) and <see cref="TenantLimits"/> as soon as the header section is in,
/// then at the end of DATA <see cref="CleanupStage"/> (key removed), <see cref="ScanStage"/>, <see cref="DispatchStage"/>
/// (durable, then answered). A stage that refuses the message ends it here, with its reply, one log line and a trace record.
/// </summary>
internal sealed partial class RelayMessageWriter(RelayTransactionHandler relay, SmtpSessionInfo session, SmtpTransaction transaction, MessageContent content)
    : IMessageWriter
{
    // What the early key check found (HeaderSectionCompleteAsync): a complete header section cannot change, so the end
    // of DATA reuses it instead of copying and parsing it again. The lease is the tenant's transaction slot, held until
    // the writer completes or is disposed.
    private HeaderSection? _headers;
    private AuthenticatedMessage? _authenticated;
    private RoutingTable? _checkedAgainst;
    private IDisposable? _lease;

    public ValueTask WriteAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken) =>
        content.WriteAsync(data, cancellationToken);

    public async ValueTask<SmtpReply> CompleteAsync(CancellationToken cancellationToken)
    {
        try
        {
            // Null when the early check did not run: a message that is all header section, or one over the relay's limit.
            // The host's SMTP server already refuses a longer section; this guards other hosts of the handler.
            var headers = _headers ?? ReadHeaderSection();
            if (!headers.Ended)
                return Refuse(null, new Refusal(new SmtpReply(554, "5.6.0", "Header section too large"), "header section over 1 MB"));

            var table = relay.Routing.Current;
            if (Admit(headers, table, content.Length) is { } refusal)
                return Refuse(headers, refusal);
            var authenticated = _authenticated!;
            var tenant = authenticated.Tenant;

            var clean = relay.Cleanup.Clean(headers, content);
            var envelope = new Envelope
            {
                QueueId = QueueId.New(),
                ReceivedAt = DateTimeOffset.UtcNow,
                TenantId = tenant.Id,
                MailFrom = transaction.From.Address,
                Recipients = authenticated.Recipients,
                Client = session.RemoteEndPoint.Address.ToString(),
                HeloName = session.HeloName,
                Subject = CleanupStage.Subject(headers),
                MessageId = headers.Values("Message-ID").FirstOrDefault(),
                SmtpUtf8 = transaction.SmtpUtf8,
            };

            var scanned = await relay.Scan.RunAsync(envelope, tenant, clean, table, cancellationToken).ConfigureAwait(false);
            if (scanned.Refusal is not null)
                return Refuse(headers, scanned.Refusal, scanned.Result);

            var traceFields = relay.Cleanup.TraceFields(envelope.QueueId, envelope.ReceivedAt, envelope.Recipients, session, transaction.SmtpUtf8, scanned.Result.Headers);
            return await relay.Dispatch.RunAsync(envelope, tenant.Name, clean, traceFields, scanned, session.Listener.Handoff, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            Release();
        }
    }

    public ValueTask DisposeAsync()
    {
        Release();
        return ValueTask.CompletedTask;
    }

    /// <summary>
    /// Authenticates the message against <paramref name="table"/> and takes its tenant's transaction lease, with
    /// <paramref name="size"/> bytes checked against the tenant's spool; null when admitted. At the header section it
    /// all runs; at the end of DATA only what may have changed since: the key and routes, if the routing table was
    /// reloaded meanwhile (a key revoked or a tenant removed while the body streamed is refused), and the real size.
    /// </summary>
    private Refusal? Admit(HeaderSection headers, RoutingTable table, long size)
    {
        Refusal? refusal;
        if (!ReferenceEquals(table, _checkedAgainst))
        {
            var authenticated = relay.Authenticate.Run(headers, transaction, table, out refusal);
            if (authenticated is null)
                return refusal;
            if (_lease is not null && _authenticated!.Tenant.Id != authenticated.Tenant.Id)
            {
                _lease.Dispose();
                _lease = null;
            }
            (_authenticated, _checkedAgainst) = (authenticated, table);
        }
        if (_lease is null)
        {
            _lease = relay.Limits.TryEnter(_authenticated!.Tenant, size, out refusal);
            return _lease is null ? refusal : null;
        }
        return relay.Limits.HasRoom(_authenticated!.Tenant, size, out refusal) ? null : refusal;
    }

    private void Release()
    {
        _lease?.Dispose();
        _lease = null;
        content.Dispose();
    }

    /// <summary>
    /// The received header section, read from at most <see cref="HeaderSection.MaxReceivedLength"/> bytes of the content;
    /// with <paramref name="whileReceiving"/>, the content so far is not the whole message, so only an empty line ends it.
    /// </summary>
    private HeaderSection ReadHeaderSection(bool whileReceiving = false)
    {
        var length = (int)Math.Min(content.Length, HeaderSection.MaxReceivedLength);
        var prefix = ArrayPool<byte>.Shared.Rent(Math.Max(length, 1));
        try
        {
            content.CopyPrefix(prefix.AsSpan(0, length));
            return HeaderSection.Parse(prefix.AsSpan(0, length), complete: !whileReceiving && content.Length <= HeaderSection.MaxReceivedLength);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(prefix);
        }
    }

    private SmtpReply Refuse(HeaderSection? headers, Refusal refusal, Scanning.ScanResult? scan = null)
    {
        var reply = refusal.Reply;
        var envelope = new Envelope
        {
            QueueId = QueueId.New(),
            ReceivedAt = DateTimeOffset.UtcNow,
            TenantId = refusal.Tenant?.Id ?? Guid.Empty,
            MailFrom = transaction.From.Address,
            Recipients = transaction.Recipients.Select(r => new EnvelopeRecipient(r.Address, RecipientRoute.Tenant)).ToArray(),
            Client = session.RemoteEndPoint.Address.ToString(),
            HeloName = session.HeloName,
            Subject = headers is null ? null : CleanupStage.Subject(headers),
            MessageId = headers?.Values("Message-ID").FirstOrDefault(),
        };
        relay.Trace.Write(new MessageReceived(envelope, content.Length, MessageStates.Refused, $"{reply.Code} {reply.EnhancedCode} {refusal.Reason}",
            scan?.MostSevere.Description, scan?.Findings));
        RelayLog.Refused(relay.Logger, envelope.QueueId, envelope.Client, reply.Code, refusal.Reason);
        return reply;
    }
}
