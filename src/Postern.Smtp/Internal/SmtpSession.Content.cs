using System.Buffers;
using System.Runtime.CompilerServices;

namespace Postern.Smtp.Internal;

// DATA and BDAT: message content to the handler's writer, never buffered whole.
internal sealed partial class SmtpSession
{
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<string?> DataAsync(SmtpCommand command)
    {
        if (TlsMissing)
        {
            return Error(SmtpReplies.MustStartTls);
        }
        if (command.Error is not null)
        {
            return Error(command.Error);
        }
        if (_bdatInProgress || _bdatFailure is not null)
        {
            return Error(SmtpReplies.DataAfterBdat);
        }
        if (_transaction is not { } transaction)
        {
            return Error(SmtpReplies.NeedMail);
        }
        if (transaction.Body == "BINARYMIME")
        {
            return Error(SmtpReplies.BinaryMimeNeedsBdat);
        }
        if (transaction.Recipients.Count == 0)
        {
            // Expected after pipelined RCPTs were all refused (RFC 2920 §3.1): not a client error, and the
            // transaction stays open so the client may still add recipients.
            Write(SmtpReplies.NoValidRecipients);
            return null;
        }
        if (!TryBeginMessage(transaction, out var begun))
        {
            Write(SmtpReplies.TemporaryServerError);
            await ResetTransactionAsync().ConfigureAwait(false);
            return null;
        }
        // Held in the field so that any way out of the session (reset, abort, exception) disposes it.
        _messageWriter = begun;
        _progress = true;
        Write(SmtpReplies.StartData);

        var scanner = new DataScanner(_limits.MaxTextLineLength);
        long size = 0;
        var failure = (SmtpReply?)null;
        while (true)
        {
            var result = scanner.Scan(_buffer, out var contentEnd, out var next);
            var content = _buffer.Slice(_buffer.Start, contentEnd);
            size += content.Length;
            if (_messageWriter is { } writer)
            {
                if (size > _limits.MaxMessageSize)
                {
                    failure = SmtpReplies.MessageTooBig;
                }
                else if (scanner.LineTooLong)
                {
                    failure = SmtpReplies.TextLineTooLong;
                }
                else if (!content.IsEmpty && !await TryWriteAsync(writer, content).ConfigureAwait(false))
                {
                    failure = SmtpReplies.TemporaryServerError;
                }
                if (failure is not null)
                {
                    // Keep reading to the end of the data so the session stays in step; drop the writer now.
                    Log.ContentRefused(_logger, Info.SessionId, failure.Text);
                    _messageWriter = null;
                    await DisposeWriterAsync(writer).ConfigureAwait(false);
                }
            }
            _buffer = _buffer.Slice(next);
            if (result == DataScanResult.EndOfData)
            {
                break;
            }
            if (result == DataScanResult.NeedMoreData)
            {
                var status = await ReadMoreAsync(commandMode: false).ConfigureAwait(false);
                if (status != ReadStatus.Ok)
                {
                    await ResetTransactionAsync().ConfigureAwait(false);
                    return status == ReadStatus.Timeout ? OnTimeout() : "client disconnected during DATA";
                }
            }
        }

        transaction.HasBareLineEndings = scanner.BareLineEnding;
        var reply = failure;
        if (reply is null)
        {
            var writer = _messageWriter!;
            _messageWriter = null;
            reply = await CompleteAsync(writer).ConfigureAwait(false);
        }
        _transaction = null;
        Write(reply);
        return null;
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<string?> BdatAsync(SmtpCommand command)
    {
        if (command.Error is not null)
        {
            // Without a valid size we cannot know how much to skip; the client is broken anyway.
            return Error(command.Error);
        }
        var size = command.ChunkSize;
        SmtpReply? refusal = null;
        var counts = true;
        if (TlsMissing)
        {
            refusal = SmtpReplies.MustStartTls;
        }
        else if (!Info.IsExtended)
        {
            refusal = SmtpReplies.NeedEhloForBdat;
        }
        else if (_bdatFailure is not null)
        {
            // RFC 3030 §4.2: after a failed chunk, accept and discard the pipelined rest with the same answer.
            refusal = _bdatFailure;
            counts = false;
            if (command.Last)
            {
                _bdatFailure = null;
            }
        }
        else if (_transaction is null)
        {
            refusal = SmtpReplies.NeedMail;
        }
        else if (_transaction.Recipients.Count == 0)
        {
            refusal = SmtpReplies.NoValidRecipients;
            counts = false;
        }
        if (refusal is not null)
        {
            // The chunk's octets follow the command whatever we answer: consume them or we'd read them as commands.
            var discard = await ReceiveChunkAsync(size, null).ConfigureAwait(false);
            if (discard.Status != ReadStatus.Ok)
            {
                return discard.Status == ReadStatus.Timeout ? OnTimeout() : "client disconnected during BDAT";
            }
            return counts ? Error(refusal) : Write(refusal);
        }

        var transaction = _transaction!;
        if (!_bdatInProgress)
        {
            _bdatInProgress = true;
            _messageSize = 0;
            _messageWriter = TryBeginMessage(transaction, out var begun) ? begun : null;
            if (_messageWriter is null)
            {
                return await FailBdatAsync(command, size, SmtpReplies.TemporaryServerError).ConfigureAwait(false);
            }
        }
        if (size > _limits.MaxMessageSize - _messageSize)
        {
            return await FailBdatAsync(command, size, SmtpReplies.MessageTooBig).ConfigureAwait(false);
        }
        var received = await ReceiveChunkAsync(size, _messageWriter).ConfigureAwait(false);
        if (received.Status != ReadStatus.Ok)
        {
            await ResetTransactionAsync().ConfigureAwait(false);
            return received.Status == ReadStatus.Timeout ? OnTimeout() : "client disconnected during BDAT";
        }
        if (received.WriterFailed)
        {
            return await FailBdatAsync(command, 0, SmtpReplies.TemporaryServerError).ConfigureAwait(false);
        }
        _messageSize += size;
        _progress = true;
        if (!command.Last)
        {
            Write(new SmtpReply(250, "2.0.0", $"{size} octets received"));
            return null;
        }
        var writer = _messageWriter!;
        _messageWriter = null;
        _bdatInProgress = false;
        var reply = await CompleteAsync(writer).ConfigureAwait(false);
        _transaction = null;
        Write(reply);
        return null;
    }

    /// <summary>The transaction failed during BDAT: drop the writer, skip the chunk, and remember the answer for pipelined chunks.</summary>
    private async ValueTask<string?> FailBdatAsync(SmtpCommand command, long skip, SmtpReply reply)
    {
        Log.ContentRefused(_logger, Info.SessionId, reply.Text);
        await ResetTransactionAsync().ConfigureAwait(false);
        var discard = await ReceiveChunkAsync(skip, null).ConfigureAwait(false);
        if (discard.Status != ReadStatus.Ok)
        {
            return discard.Status == ReadStatus.Timeout ? OnTimeout() : "client disconnected during BDAT";
        }
        _bdatFailure = command.Last ? null : reply;
        Write(reply);
        return null;
    }

    private readonly record struct ChunkResult(ReadStatus Status, bool WriterFailed);

    /// <summary>Reads exactly <paramref name="size"/> octets, handing them to <paramref name="writer"/> when there is one.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<ChunkResult> ReceiveChunkAsync(long size, IMessageWriter? writer)
    {
        var remaining = size;
        var failed = false;
        while (remaining > 0)
        {
            if (_buffer.IsEmpty)
            {
                var status = await ReadMoreAsync(commandMode: false).ConfigureAwait(false);
                if (status != ReadStatus.Ok)
                {
                    return new ChunkResult(status, failed);
                }
                continue;
            }
            var take = Math.Min(remaining, _buffer.Length);
            if (writer is not null && !failed && !await TryWriteAsync(writer, _buffer.Slice(0, take)).ConfigureAwait(false))
            {
                failed = true;
            }
            _buffer = _buffer.Slice(take);
            remaining -= take;
        }
        return new ChunkResult(ReadStatus.Ok, failed);
    }

    private bool TryBeginMessage(SmtpTransaction transaction, out IMessageWriter? writer)
    {
        try
        {
            writer = _host.Handler.BeginMessage(Info, transaction);
            return writer is not null;
        }
        catch (Exception ex) when (IsHandlerFault(ex))
        {
            Log.HandlerFailed(_logger, ex, Info.SessionId, "BeginMessage");
            writer = null;
            return false;
        }
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<bool> TryWriteAsync(IMessageWriter writer, ReadOnlySequence<byte> content)
    {
        try
        {
            foreach (var segment in content)
            {
                await writer.WriteAsync(segment, SessionToken).ConfigureAwait(false);
            }
            return true;
        }
        catch (Exception ex) when (IsHandlerFault(ex))
        {
            Log.HandlerFailed(_logger, ex, Info.SessionId, "WriteAsync");
            return false;
        }
    }

    /// <summary>Ends the message; per the writer contract, a completed writer is not also disposed.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<SmtpReply> CompleteAsync(IMessageWriter writer)
    {
        SmtpReply reply;
        try
        {
            reply = ReplyFormatter.Normalize(await writer.CompleteAsync(SessionToken).ConfigureAwait(false));
        }
        catch (Exception ex) when (IsHandlerFault(ex))
        {
            Log.HandlerFailed(_logger, ex, Info.SessionId, "CompleteAsync");
            await DisposeWriterAsync(writer).ConfigureAwait(false);
            return SmtpReplies.TemporaryServerError;
        }
        if (reply.IsPositive)
        {
            _messagesAccepted++;
            _commandsWithoutProgress = 0;
        }
        return reply;
    }

    private async ValueTask DisposeWriterAsync(IMessageWriter writer)
    {
        try
        {
            await writer.DisposeAsync().ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            Log.WriterDisposeFailed(_logger, ex, Info.SessionId);
        }
    }

    private async ValueTask ResetTransactionAsync()
    {
        _transaction = null;
        _bdatInProgress = false;
        _bdatFailure = null;
        _messageSize = 0;
        if (_messageWriter is { } writer)
        {
            _messageWriter = null;
            await DisposeWriterAsync(writer).ConfigureAwait(false);
        }
    }

    /// <summary>A handler exception is the handler's fault unless it is our own session token being cancelled.</summary>
    private bool IsHandlerFault(Exception ex) => !(ex is OperationCanceledException && _sessionCts.IsCancellationRequested);
}
