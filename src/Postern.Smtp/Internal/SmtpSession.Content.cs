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
        StartContent();
        _progress = true;
        Write(SmtpReplies.StartData);

        var scanner = new DataScanner();
        while (true)
        {
            var result = scanner.Scan(_buffer, out var contentEnd, out var next);
            var content = _buffer.Slice(_buffer.Start, contentEnd);
            if (!content.IsEmpty)
            {
                await AddContentAsync(content).ConfigureAwait(false);
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

        var reply = await EndContentAsync().ConfigureAwait(false);
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
            var discard = await ReceiveChunkAsync(size, keep: false).ConfigureAwait(false);
            if (discard != ReadStatus.Ok)
            {
                return discard == ReadStatus.Timeout ? OnTimeout() : "client disconnected during BDAT";
            }
            return counts ? Error(refusal) : Write(refusal);
        }

        var transaction = _transaction!;
        if (!_bdatInProgress)
        {
            _bdatInProgress = true;
            _messageWriter = TryBeginMessage(transaction, out var begun) ? begun : null;
            if (_messageWriter is null)
            {
                return await FailBdatAsync(command, size, SmtpReplies.TemporaryServerError).ConfigureAwait(false);
            }
            StartContent();
        }
        if (!_content.AdmitChunk(size))
        {
            await TellRefusedAsync(_content.Failure!).ConfigureAwait(false);
            return await FailBdatAsync(command, size, _content.Failure!).ConfigureAwait(false);
        }
        var received = await ReceiveChunkAsync(size, keep: true).ConfigureAwait(false);
        if (received != ReadStatus.Ok)
        {
            await ResetTransactionAsync().ConfigureAwait(false);
            return received == ReadStatus.Timeout ? OnTimeout() : "client disconnected during BDAT";
        }
        _progress = true;
        if (_contentFailure is { } failure)
        {
            // Already logged and the writer already gone; the chunk is consumed.
            await ResetTransactionAsync().ConfigureAwait(false);
            _bdatFailure = command.Last ? null : failure;
            Write(failure);
            return null;
        }
        if (!command.Last)
        {
            Write(new SmtpReply(250, "2.0.0", $"{size} octets received"));
            return null;
        }
        _bdatInProgress = false;
        var reply = await EndContentAsync().ConfigureAwait(false);
        _transaction = null;
        Write(reply);
        return null;
    }

    /// <summary>The transaction failed during BDAT: drop the writer, skip the chunk, and remember the answer for pipelined chunks.</summary>
    private async ValueTask<string?> FailBdatAsync(SmtpCommand command, long skip, SmtpReply reply)
    {
        Log.ContentRefused(_logger, Info.SessionId, reply.Text);
        await ResetTransactionAsync().ConfigureAwait(false);
        var discard = await ReceiveChunkAsync(skip, keep: false).ConfigureAwait(false);
        if (discard != ReadStatus.Ok)
        {
            return discard == ReadStatus.Timeout ? OnTimeout() : "client disconnected during BDAT";
        }
        _bdatFailure = command.Last ? null : reply;
        Write(reply);
        return null;
    }

    /// <summary>Reads exactly <paramref name="size"/> octets, as content of the current message when <paramref name="keep"/>.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<ReadStatus> ReceiveChunkAsync(long size, bool keep)
    {
        var remaining = size;
        while (remaining > 0)
        {
            if (_buffer.IsEmpty)
            {
                var status = await ReadMoreAsync(commandMode: false).ConfigureAwait(false);
                if (status != ReadStatus.Ok)
                {
                    return status;
                }
                continue;
            }
            var take = Math.Min(remaining, _buffer.Length);
            if (keep)
            {
                await AddContentAsync(_buffer.Slice(0, take)).ConfigureAwait(false);
            }
            _buffer = _buffer.Slice(take);
            remaining -= take;
        }
        return ReadStatus.Ok;
    }

    /// <summary>A new message's content begins (DATA, or the first BDAT chunk).</summary>
    private void StartContent()
    {
        _content = new ContentChecker(_limits);
        _contentFailure = null;
    }

    /// <summary>
    /// Content of the current message, from DATA or a BDAT chunk alike: checked, then handed to the writer. Once the
    /// message has failed (a check, the writer, or the writer's refusal at the end of the header section) the writer is
    /// gone and the rest is only read and discarded, so the session stays in step and nothing more is stored.
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask AddContentAsync(ReadOnlySequence<byte> content)
    {
        foreach (var segment in content)
        {
            if (_contentFailure is not null || _messageWriter is not { } writer)
            {
                return;
            }
            var check = _content.Check(segment.Span);
            if (check == ContentCheck.Failed)
            {
                // The writer still gets the piece that failed (one read, bounded), so the refusal it hears next can be
                // recorded with the message's header fields; it is disposed straight after and stores nothing.
                await TryWriteAsync(writer, segment).ConfigureAwait(false);
                await FailContentAsync(_content.Failure!, byServer: true).ConfigureAwait(false);
                return;
            }
            if (!await TryWriteAsync(writer, segment).ConfigureAwait(false))
            {
                await FailContentAsync(SmtpReplies.TemporaryServerError).ConfigureAwait(false);
                return;
            }
            if (check == ContentCheck.HeaderSectionComplete && await HeaderSectionCompleteAsync(writer).ConfigureAwait(false) is { } refusal)
            {
                await FailContentAsync(refusal).ConfigureAwait(false);
                return;
            }
        }
    }

    /// <summary>The end of the content: the last checks, then the writer's answer unless the message already failed.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<SmtpReply> EndContentAsync()
    {
        if (_contentFailure is null && _content.Complete() is { } failure)
        {
            await FailContentAsync(failure, byServer: true).ConfigureAwait(false);
        }
        if (_contentFailure is { } refused)
        {
            _contentFailure = null;
            return refused;
        }
        var writer = _messageWriter!;
        _messageWriter = null;
        return await CompleteAsync(writer).ConfigureAwait(false);
    }

    /// <summary>
    /// The message is refused: drop the writer now and remember the reply for the end of its content. When the server's
    /// own checks refused it (<paramref name="byServer"/>), the writer hears why first, so the refusal can be recorded.
    /// </summary>
    private async ValueTask FailContentAsync(SmtpReply reply, bool byServer = false)
    {
        Log.ContentRefused(_logger, Info.SessionId, reply.Text);
        if (byServer)
        {
            await TellRefusedAsync(reply).ConfigureAwait(false);
        }
        _contentFailure = reply;
        if (_messageWriter is { } writer)
        {
            _messageWriter = null;
            await DisposeWriterAsync(writer).ConfigureAwait(false);
        }
    }

    /// <summary>Tells the current writer, if any, that the server refused its content with <paramref name="reply"/>.</summary>
    private async ValueTask TellRefusedAsync(SmtpReply reply)
    {
        if (_messageWriter is not { } writer)
        {
            return;
        }
        try
        {
            await writer.ContentRefusedAsync(reply, SessionToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (IsHandlerFault(ex))
        {
            Log.HandlerFailed(_logger, ex, Info.SessionId, "ContentRefusedAsync");
        }
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<SmtpReply?> HeaderSectionCompleteAsync(IMessageWriter writer)
    {
        try
        {
            return await writer.HeaderSectionCompleteAsync(SessionToken).ConfigureAwait(false) is { } reply ? ReplyFormatter.Normalize(reply) : null;
        }
        catch (Exception ex) when (IsHandlerFault(ex))
        {
            Log.HandlerFailed(_logger, ex, Info.SessionId, "HeaderSectionCompleteAsync");
            return SmtpReplies.TemporaryServerError;
        }
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
    private async ValueTask<bool> TryWriteAsync(IMessageWriter writer, ReadOnlyMemory<byte> content)
    {
        try
        {
            await writer.WriteAsync(content, SessionToken).ConfigureAwait(false);
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
        _contentFailure = null;
        if (_messageWriter is { } writer)
        {
            _messageWriter = null;
            await DisposeWriterAsync(writer).ConfigureAwait(false);
        }
    }

    /// <summary>A handler exception is the handler's fault unless it is our own session token being cancelled.</summary>
    private bool IsHandlerFault(Exception ex) => !(ex is OperationCanceledException && _sessionCts.IsCancellationRequested);
}
