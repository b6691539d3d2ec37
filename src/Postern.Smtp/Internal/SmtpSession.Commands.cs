using System.Runtime.CompilerServices;

namespace Postern.Smtp.Internal;

// MAIL and RCPT: the envelope.
internal sealed partial class SmtpSession
{
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<string?> MailAsync(SmtpCommand command)
    {
        if (TlsMissing)
        {
            return Error(SmtpReplies.MustStartTls);
        }
        if (Info.HeloName is null)
        {
            return Error(SmtpReplies.NeedHelo);
        }
        if (_transaction is not null)
        {
            return Error(SmtpReplies.NestedMail);
        }
        if (command.Error is not null)
        {
            return Error(command.Error);
        }
        if (command.HasParameters && !Info.IsExtended)
        {
            return Error(SmtpReplies.ParametersNeedEhlo);
        }
        _bdatFailure = null;
        if (command.Size > _limits.MaxMessageSize)
        {
            Write(SmtpReplies.MessageTooBig);
            return null;
        }
        var transaction = new SmtpTransaction
        {
            From = command.Address!,
            DeclaredSize = command.Size,
            Body = command.Body,
            SmtpUtf8 = command.SmtpUtf8,
        };
        SmtpReply reply;
        try
        {
            reply = ReplyFormatter.Normalize(await _host.Handler.MailFromAsync(Info, transaction, SessionToken).ConfigureAwait(false));
        }
        catch (Exception ex) when (IsHandlerFault(ex))
        {
            Log.HandlerFailed(_logger, ex, Info.SessionId, "MAIL");
            reply = SmtpReplies.TemporaryServerError;
        }
        if (reply.IsPositive)
        {
            _transaction = transaction;
        }
        Write(reply);
        return null;
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<string?> RcptAsync(SmtpCommand command)
    {
        if (TlsMissing)
        {
            return Error(SmtpReplies.MustStartTls);
        }
        if (_bdatInProgress || _bdatFailure is not null)
        {
            return Error(SmtpReplies.RcptAfterBdat);
        }
        if (_transaction is not { } transaction)
        {
            return Error(SmtpReplies.NeedMail);
        }
        if (command.Error is not null)
        {
            return Error(command.Error);
        }
        if (transaction.Recipients.Count >= _limits.MaxRecipients)
        {
            // RFC 5321 §4.5.3.1.10: 452 so the client sends the rest in another transaction. Not a client error.
            Write(SmtpReplies.TooManyRecipients);
            return null;
        }
        SmtpReply reply;
        try
        {
            reply = ReplyFormatter.Normalize(await _host.Handler.RecipientAsync(Info, transaction, command.Address!, SessionToken).ConfigureAwait(false));
        }
        catch (Exception ex) when (IsHandlerFault(ex))
        {
            Log.HandlerFailed(_logger, ex, Info.SessionId, "RCPT");
            reply = SmtpReplies.TemporaryServerError;
        }
        if (reply.IsPositive)
        {
            transaction.Recipients.Add(command.Address!);
            _progress = true;
        }
        Write(reply);
        return null;
    }
}
