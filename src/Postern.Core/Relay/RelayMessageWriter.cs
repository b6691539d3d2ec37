using System.Buffers;
using Postern.Core.Spool;
using Postern.Core.Trace;
using Postern.Smtp;

namespace Postern.Core.Relay;

/// <summary>
/// Collects one message's content and, at the end of DATA, runs the relay's stages in the order a message meets them:
/// <see cref="AuthenticateStage"/> (whose is it), <see cref="TenantLimits"/>, <see cref="CleanupStage"/> (key
/// removed), <see cref="ScanStage"/>, <see cref="DispatchStage"/> (durable, then answered). A stage that refuses the
/// message ends it here, with its reply, one log line and a trace record.
/// </summary>
internal sealed partial class RelayMessageWriter(RelayTransactionHandler relay, SmtpSessionInfo session, SmtpTransaction transaction, MessageContent content)
    : IMessageWriter
{
    public ValueTask WriteAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken) =>
        content.WriteAsync(data, cancellationToken);

    public async ValueTask<SmtpReply> CompleteAsync(CancellationToken cancellationToken)
    {
        try
        {
            var headers = ReadHeaderSection();
            // The host's SMTP server already refuses a longer section; this guards other hosts of the handler.
            if (!headers.Ended)
                return Refuse(null, new Refusal(new SmtpReply(554, "5.6.0", "Header section too large"), "header section over 1 MB"));

            var table = relay.Routing.Current;
            var authenticated = relay.Authenticate.Run(headers, transaction, table, out var refusal);
            if (authenticated is null)
                return Refuse(headers, refusal!);
            var tenant = authenticated.Tenant;
            using var lease = relay.Limits.TryEnter(tenant, content.Length, out refusal);
            if (lease is null)
                return Refuse(headers, refusal!);

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
            content.Dispose();
        }
    }

    public ValueTask DisposeAsync()
    {
        content.Dispose();
        return ValueTask.CompletedTask;
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
