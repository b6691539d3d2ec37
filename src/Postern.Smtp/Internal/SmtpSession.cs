using System.Buffers;
using System.ComponentModel;
using System.Diagnostics;
using System.IO.Pipelines;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Logging;

namespace Postern.Smtp.Internal;

/// <summary>What sessions share with the server that runs them.</summary>
internal sealed class SessionHost(SmtpLimits limits, ISmtpTransactionHandler handler, ILogger logger)
{
    private volatile bool _stopping;

    public SmtpLimits Limits { get; } = limits;

    public ISmtpTransactionHandler Handler { get; } = handler;

    public ILogger Logger { get; } = logger;

    /// <summary>Once set, sessions answer their next command with 421 4.3.2 and close.</summary>
    public bool IsStopping => _stopping;

    public void SignalStopping() => _stopping = true;
}

/// <summary>
/// One SMTP connection. A single loop reads commands from a <see cref="PipeReader"/>, executes every complete
/// command already buffered, and flushes the accumulated replies only before it waits for more input (RFC 2920).
/// </summary>
internal sealed class SmtpSession
{
    // Small segments and zero-byte reads: an idle session holds no read buffer at all, so thousands of
    // idle connections cost little more than their sockets.
    private static readonly StreamPipeReaderOptions ReaderOptions = new(pool: MemoryPool<byte>.Shared, bufferSize: 4096, minimumReadSize: 1024, leaveOpen: true, useZeroByteReads: true);
    private static readonly StreamPipeWriterOptions WriterOptions = new(pool: MemoryPool<byte>.Shared, minimumBufferSize: 1024, leaveOpen: true);
    private static readonly TimeSpan CloseTimeout = TimeSpan.FromSeconds(2);

    private readonly SessionHost _host;
    private readonly SmtpLimits _limits;
    private readonly ILogger _logger;
    private readonly ListenerContext _listener;
    private readonly Socket _socket;
    private readonly NetworkStream _networkStream;
    private readonly CancellationTokenSource _sessionCts;
    private readonly long _deadline;
    private SslStream? _sslStream;
    private volatile PipeReader _reader;
    private PipeWriter _writer;
    private CancellationTokenSource _ioCts = new();

    private ReadOnlySequence<byte> _buffer;
    private bool _hasBuffer;
    private bool _inputCompleted;
    private bool _outputPending;
    private bool _discardingLongLine;
    private bool _transportBroken;
    private volatile bool _aborted;

    private SmtpTransaction? _transaction;
    private IMessageWriter? _messageWriter;
    private long _messageSize;
    private bool _bdatInProgress;
    private SmtpReply? _bdatFailure;

    private int _errors;
    private int _commandsWithoutProgress;
    private int _messagesAccepted;

    public SmtpSession(SessionHost host, ListenerContext listener, Socket socket, string sessionId, IPEndPoint remote, IPEndPoint local)
    {
        _host = host;
        _limits = host.Limits;
        _logger = host.Logger;
        _listener = listener;
        _socket = socket;
        _networkStream = new NetworkStream(socket, ownsSocket: false);
        _reader = PipeReader.Create(_networkStream, ReaderOptions);
        _writer = PipeWriter.Create(_networkStream, WriterOptions);
        _sessionCts = new CancellationTokenSource();
        if (_limits.SessionTimeout != Timeout.InfiniteTimeSpan)
        {
            _sessionCts.CancelAfter(Clamp(_limits.SessionTimeout));
            _deadline = Environment.TickCount64 + (long)_limits.SessionTimeout.TotalMilliseconds;
        }
        else
        {
            _deadline = long.MaxValue;
        }
        Info = new SmtpSessionInfo { SessionId = sessionId, Listener = listener.Options, RemoteEndPoint = remote, LocalEndPoint = local };
    }

    public SmtpSessionInfo Info { get; }

    private CancellationToken SessionToken => _sessionCts.Token;

    private bool TlsMissing => _listener.Options.RequireTls && !Info.IsTls;

    /// <summary>Wakes a session waiting for a command so it can see that the server is stopping.</summary>
    public void RequestStop()
    {
        try
        {
            _reader.CancelPendingRead();
        }
        catch (Exception ex) when (ex is InvalidOperationException or ObjectDisposedException)
        {
            // The reader was just replaced (STARTTLS) or the session is ending; it checks the flag itself.
        }
    }

    /// <summary>Hard stop: no more replies, the socket goes away.</summary>
    public void Abort()
    {
        _aborted = true;
        try
        {
            _sessionCts.Cancel();
        }
        catch (ObjectDisposedException)
        {
        }
        _socket.Dispose();
    }

    public async Task RunAsync()
    {
        var started = Environment.TickCount64;
        var reason = "unknown";
        Log.SessionStarted(_logger, Info.SessionId, Info.RemoteEndPoint, _listener.Options.Name);
        try
        {
            if (_host.IsStopping)
            {
                Write(SmtpReplies.ShuttingDown);
                reason = "server shutting down";
            }
            else
            {
                _writer.Write(_listener.Greeting);
                _outputPending = true;
                reason = await CommandLoopAsync().ConfigureAwait(false);
            }
            await CloseGracefullyAsync().ConfigureAwait(false);
        }
        catch (Exception ex) when (_aborted)
        {
            reason = "aborted";
            Log.ConnectionLost(_logger, Info.SessionId, ex.GetType().Name);
        }
        catch (OperationCanceledException) when (_sessionCts.IsCancellationRequested)
        {
            // The session deadline passed inside a handler call.
            reason = "session timeout";
            await TryFinalReplyAsync(SmtpReplies.SessionTimeout).ConfigureAwait(false);
        }
        catch (Exception ex) when (IsConnectionError(ex))
        {
            reason = "connection lost";
            Log.ConnectionLost(_logger, Info.SessionId, ex.Message);
        }
        catch (Exception ex)
        {
            reason = "failed";
            Log.SessionFailed(_logger, ex, Info.SessionId, Info.RemoteEndPoint);
        }
        finally
        {
            await CleanupAsync().ConfigureAwait(false);
            Log.SessionEnded(_logger, Info.SessionId, reason, Environment.TickCount64 - started, _messagesAccepted);
        }
    }

    private static bool IsConnectionError(Exception ex) =>
        ex is IOException or SocketException or ObjectDisposedException or AuthenticationException or Win32Exception;

    // ---------------------------------------------------------------- command loop

    private async Task<string> CommandLoopAsync()
    {
        while (true)
        {
            if (_host.IsStopping)
            {
                Write(SmtpReplies.ShuttingDown);
                return "server shutting down";
            }
            string? close;
            switch (TryTakeLine(out var line))
            {
                case LineKind.Line:
                    close = await ExecuteAsync(line).ConfigureAwait(false);
                    break;
                case LineKind.TooLong:
                    close = Error(SmtpReplies.CommandLineTooLong);
                    break;
                case LineKind.BareLineEnding:
                    close = Error(SmtpReplies.BareLineEnding);
                    break;
                default:
                    switch (await ReadMoreAsync(commandMode: true).ConfigureAwait(false))
                    {
                        case ReadStatus.EndOfInput:
                            return "client disconnected";
                        case ReadStatus.Timeout:
                            return OnTimeout();
                    }
                    continue;
            }
            if (close is not null)
            {
                return close;
            }
        }
    }

    private enum LineKind
    {
        None,
        Line,
        TooLong,
        BareLineEnding,
    }

    /// <summary>Takes the next CRLF-terminated line (without CRLF) from the buffer, never looking further than the line limit.</summary>
    private LineKind TryTakeLine(out ReadOnlySequence<byte> line)
    {
        line = default;
        if (_discardingLongLine)
        {
            var end = _buffer.PositionOf((byte)'\n');
            if (end is null)
            {
                _buffer = _buffer.Slice(_buffer.End);
                return LineKind.None;
            }
            _buffer = _buffer.Slice(_buffer.GetPosition(1, end.Value));
            _discardingLongLine = false;
            return LineKind.TooLong;
        }
        var max = _limits.MaxCommandLineLength;
        var window = _buffer.Length > max ? _buffer.Slice(0, max) : _buffer;
        var lf = window.PositionOf((byte)'\n');
        if (lf is null)
        {
            if (_buffer.Length >= max)
            {
                _discardingLongLine = true;
                return TryTakeLine(out line);
            }
            return LineKind.None;
        }
        var raw = _buffer.Slice(0, lf.Value);
        _buffer = _buffer.Slice(_buffer.GetPosition(1, lf.Value));
        // Only CRLF ends a command line; a bare LF or CR is refused (SMTP smuggling, CVE-2023-51764 family).
        if (raw.IsEmpty || LastByte(raw) != (byte)'\r')
        {
            return LineKind.BareLineEnding;
        }
        line = raw.Slice(0, raw.Length - 1);
        return line.PositionOf((byte)'\r') is null ? LineKind.Line : LineKind.BareLineEnding;
    }

    private static byte LastByte(in ReadOnlySequence<byte> s) => s.Slice(s.Length - 1).FirstSpan[0];

    private SmtpCommand Parse(in ReadOnlySequence<byte> line)
    {
        var utf8 = _transaction?.SmtpUtf8 ?? false;
        if (line.IsSingleSegment)
        {
            return SmtpCommand.Parse(line.FirstSpan, utf8);
        }
        var length = (int)line.Length;
        var rented = ArrayPool<byte>.Shared.Rent(length);
        try
        {
            line.CopyTo(rented);
            return SmtpCommand.Parse(rented.AsSpan(0, length), utf8);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(rented);
        }
    }

    /// <summary>Runs one command. Returns null to go on, or the reason the session ends (the last reply is already written).</summary>
    private async ValueTask<string?> ExecuteAsync(ReadOnlySequence<byte> line)
    {
        var command = Parse(line);
        var verb = command.Verb;
        // Commands that move a transaction forward don't count; everything else is "no progress" until a message is accepted.
        if (verb is not (SmtpVerb.Rcpt or SmtpVerb.Data or SmtpVerb.Bdat or SmtpVerb.Quit)
            && ++_commandsWithoutProgress > _limits.MaxCommandsWithoutProgress)
        {
            Write(SmtpReplies.TooManyCommands);
            Log.SessionClosedByServer(_logger, Info.SessionId, Info.RemoteEndPoint, "too many commands without progress");
            return "too many commands without progress";
        }

        switch (verb)
        {
            case SmtpVerb.Helo:
            case SmtpVerb.Ehlo:
                if (command.Error is not null)
                {
                    return Error(command.Error);
                }
                await ResetTransactionAsync().ConfigureAwait(false);
                Info.HeloName = command.Domain;
                Info.IsExtended = verb == SmtpVerb.Ehlo;
                if (verb == SmtpVerb.Helo)
                {
                    Write(_listener.HeloReply);
                }
                else
                {
                    _writer.Write(_listener.TlsOptions is not null && !Info.IsTls ? _listener.EhloWithStartTls : _listener.EhloWithoutStartTls);
                    _outputPending = true;
                }
                return null;

            case SmtpVerb.Mail:
                return await MailAsync(command).ConfigureAwait(false);

            case SmtpVerb.Rcpt:
                return await RcptAsync(command).ConfigureAwait(false);

            case SmtpVerb.Data:
                return await DataAsync(command).ConfigureAwait(false);

            case SmtpVerb.Bdat:
                return await BdatAsync(command).ConfigureAwait(false);

            case SmtpVerb.StartTls:
                return await StartTlsAsync(command).ConfigureAwait(false);

            case SmtpVerb.Rset:
                if (command.Error is not null)
                {
                    return Error(command.Error);
                }
                await ResetTransactionAsync().ConfigureAwait(false);
                Write(SmtpReplies.Ok);
                return null;

            case SmtpVerb.Noop:
                Write(SmtpReplies.Ok);
                return null;

            case SmtpVerb.Help:
                Write(SmtpReplies.Help);
                return null;

            case SmtpVerb.Vrfy:
                if (command.Error is not null)
                {
                    return Error(command.Error);
                }
                Write(SmtpReplies.Vrfy);
                return null;

            case SmtpVerb.Expn:
                return Error(SmtpReplies.ExpnRefused);

            case SmtpVerb.Quit:
                if (command.Error is not null)
                {
                    return Error(command.Error);
                }
                Write(SmtpReplies.Bye);
                return "quit";

            default:
                return Error(SmtpReplies.CommandUnrecognized);
        }
    }

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
        }
        Write(reply);
        return null;
    }

    // ---------------------------------------------------------------- DATA

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
            // Expected after pipelined RCPTs were all refused (RFC 2920 §3.1); not a client error.
            Write(SmtpReplies.NoValidRecipients);
            await ResetTransactionAsync().ConfigureAwait(false);
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

    // ---------------------------------------------------------------- BDAT (RFC 3030)

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
            if (refusal == SmtpReplies.NoValidRecipients)
            {
                await ResetTransactionAsync().ConfigureAwait(false);
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

    // ---------------------------------------------------------------- message writer plumbing

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

    // ---------------------------------------------------------------- STARTTLS (RFC 3207)

    private async ValueTask<string?> StartTlsAsync(SmtpCommand command)
    {
        if (command.Error is not null)
        {
            return Error(command.Error);
        }
        if (_listener.TlsOptions is null)
        {
            return Error(SmtpReplies.StartTlsUnavailable);
        }
        if (Info.IsTls)
        {
            return Error(SmtpReplies.TlsAlreadyActive);
        }
        if (_transaction is not null || _bdatFailure is not null)
        {
            return Error(SmtpReplies.StartTlsInTransaction);
        }
        Write(SmtpReplies.ReadyToStartTls);
        await FlushAsync(IdleTimeoutMs()).ConfigureAwait(false);

        // CVE-2011-0411: anything the client sent behind STARTTLS arrived in clear text and must not be
        // executed as if it came over TLS. Throw it away.
        if (!_buffer.IsEmpty)
        {
            Log.DiscardedAfterStartTls(_logger, Info.SessionId, Info.RemoteEndPoint, _buffer.Length);
        }
        if (_hasBuffer)
        {
            _reader.AdvanceTo(_buffer.End);
            _hasBuffer = false;
        }
        _buffer = default;
        _discardingLongLine = false;
        await _reader.CompleteAsync().ConfigureAwait(false);
        await _writer.CompleteAsync().ConfigureAwait(false);

        var ssl = new SslStream(_networkStream, leaveInnerStreamOpen: true);
        _sslStream = ssl;
        _transportBroken = true; // until the handshake succeeds there is nothing to write replies to
        ArmTimeout(IdleTimeoutMs());
        try
        {
            await ssl.AuthenticateAsServerAsync(_listener.TlsOptions, _ioCts.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is AuthenticationException or IOException or Win32Exception || (ex is OperationCanceledException && _ioCts.IsCancellationRequested))
        {
            Log.TlsHandshakeFailed(_logger, Info.SessionId, Info.RemoteEndPoint, ex.Message);
            return "TLS handshake failed";
        }
        DisarmTimeout();
        _transportBroken = false;

        Info.TlsProtocol = ssl.SslProtocol;
        Info.TlsCipher = ssl.NegotiatedCipherSuite.ToString();
        Info.ClientCertificate = ssl.RemoteCertificate as X509Certificate2;
        Log.TlsEstablished(_logger, Info.SessionId, ssl.SslProtocol.ToString(), Info.TlsCipher, Info.ClientCertificate?.Subject ?? "none");

        _reader = PipeReader.Create(ssl, ReaderOptions);
        _writer = PipeWriter.Create(ssl, WriterOptions);
        _inputCompleted = false;
        // RFC 3207 §4.2: forget everything learned before TLS.
        Info.HeloName = null;
        Info.IsExtended = false;
        await ResetTransactionAsync().ConfigureAwait(false);
        return null;
    }

    // ---------------------------------------------------------------- replies and I/O

    private string? Write(SmtpReply reply)
    {
        ReplyFormatter.Write(_writer, reply);
        _outputPending = true;
        return null;
    }

    /// <summary>Writes a reply to a client mistake; returns the close reason when that was one mistake too many.</summary>
    private string? Error(SmtpReply reply)
    {
        Write(reply);
        if (++_errors >= _limits.MaxErrors)
        {
            Write(SmtpReplies.TooManyErrors);
            Log.SessionClosedByServer(_logger, Info.SessionId, Info.RemoteEndPoint, "too many errors");
            return "too many errors";
        }
        return null;
    }

    private string OnTimeout()
    {
        var session = Environment.TickCount64 >= _deadline;
        Write(session ? SmtpReplies.SessionTimeout : SmtpReplies.IdleTimeout);
        var reason = session ? "session timeout" : "idle timeout";
        Log.SessionClosedByServer(_logger, Info.SessionId, Info.RemoteEndPoint, reason);
        return reason;
    }

    private enum ReadStatus
    {
        Ok,
        EndOfInput,
        Timeout,
        Stopping,
    }

    /// <summary>
    /// Releases what was consumed, flushes pending replies (the one flush point of a pipelined batch), then waits for input.
    /// </summary>
    private async ValueTask<ReadStatus> ReadMoreAsync(bool commandMode)
    {
        if (_hasBuffer)
        {
            _reader.AdvanceTo(_buffer.Start, _buffer.End);
            _hasBuffer = false;
            _buffer = default;
        }
        if (_inputCompleted)
        {
            return ReadStatus.EndOfInput;
        }
        if (_outputPending)
        {
            await FlushAsync(IdleTimeoutMs()).ConfigureAwait(false);
        }
        if (commandMode && _host.IsStopping)
        {
            return ReadStatus.Stopping;
        }
        var timeout = ReadTimeoutMs();
        if (timeout == 0)
        {
            return ReadStatus.Timeout;
        }
        ArmTimeout(timeout);
        ReadResult result;
        try
        {
            result = await _reader.ReadAsync(_ioCts.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (_ioCts.IsCancellationRequested)
        {
            return ReadStatus.Timeout;
        }
        DisarmTimeout();
        _buffer = result.Buffer;
        _hasBuffer = true;
        _inputCompleted = result.IsCompleted;
        if (result.IsCanceled && commandMode && _host.IsStopping)
        {
            return ReadStatus.Stopping;
        }
        if (result.IsCompleted && _buffer.IsEmpty)
        {
            return ReadStatus.EndOfInput;
        }
        return ReadStatus.Ok;
    }

    private async ValueTask FlushAsync(int timeoutMs)
    {
        _outputPending = false;
        ArmTimeout(timeoutMs);
        try
        {
            await _writer.FlushAsync(_ioCts.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (_ioCts.IsCancellationRequested)
        {
            _transportBroken = true;
            throw new IOException("The client did not read the server's replies in time.");
        }
        DisarmTimeout();
    }

    private int IdleTimeoutMs() => _limits.IdleTimeout == Timeout.InfiniteTimeSpan ? Timeout.Infinite : (int)Clamp(_limits.IdleTimeout).TotalMilliseconds;

    /// <summary>The idle timeout, cut short by the session deadline; 0 when the deadline has passed.</summary>
    private int ReadTimeoutMs()
    {
        var idle = IdleTimeoutMs();
        if (_deadline == long.MaxValue)
        {
            return idle;
        }
        var left = Math.Max(0, _deadline - Environment.TickCount64);
        return idle == Timeout.Infinite ? (int)Math.Min(left, int.MaxValue) : (int)Math.Min(left, idle);
    }

    private void ArmTimeout(int ms)
    {
        if (ms != Timeout.Infinite)
        {
            _ioCts.CancelAfter(ms);
        }
    }

    private void DisarmTimeout()
    {
        if (!_ioCts.TryReset())
        {
            _ioCts.Dispose();
            _ioCts = new CancellationTokenSource();
        }
    }

    private static TimeSpan Clamp(TimeSpan t) => t > TimeSpan.FromMilliseconds(int.MaxValue - 1) ? TimeSpan.FromMilliseconds(int.MaxValue - 1) : t;

    /// <summary>A last reply on a path where the normal flow was interrupted; never throws.</summary>
    private async ValueTask TryFinalReplyAsync(SmtpReply reply)
    {
        if (_aborted || _transportBroken)
        {
            return;
        }
        try
        {
            DisarmTimeout();
            Write(reply);
            await FlushAsync((int)CloseTimeout.TotalMilliseconds).ConfigureAwait(false);
        }
        catch (Exception ex) when (IsConnectionError(ex) || ex is InvalidOperationException)
        {
        }
    }

    /// <summary>
    /// Sends what is pending, then half-closes and briefly drains input: closing a socket with unread input makes
    /// the kernel send RST, which can destroy our last reply before the client reads it.
    /// </summary>
    private async ValueTask CloseGracefullyAsync()
    {
        if (_aborted || _transportBroken)
        {
            return;
        }
        DisarmTimeout();
        if (_outputPending)
        {
            await FlushAsync((int)CloseTimeout.TotalMilliseconds).ConfigureAwait(false);
        }
        using var cts = new CancellationTokenSource(CloseTimeout);
        try
        {
            if (_sslStream is not null)
            {
                await _sslStream.ShutdownAsync().WaitAsync(cts.Token).ConfigureAwait(false);
            }
            _socket.Shutdown(SocketShutdown.Send);
            var scratch = ArrayPool<byte>.Shared.Rent(1024);
            try
            {
                var drained = 0;
                while (drained < 64 * 1024)
                {
                    var n = await _socket.ReceiveAsync(scratch.AsMemory(), SocketFlags.None, cts.Token).ConfigureAwait(false);
                    if (n == 0)
                    {
                        break;
                    }
                    drained += n;
                }
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(scratch);
            }
        }
        catch (Exception ex) when (IsConnectionError(ex) || ex is OperationCanceledException or TimeoutException)
        {
        }
    }

    private async ValueTask CleanupAsync()
    {
        if (_messageWriter is { } writer)
        {
            _messageWriter = null;
            await DisposeWriterAsync(writer).ConfigureAwait(false);
        }
        // Close the transport first so completing the pipes can never block on a client that stopped reading.
        try
        {
            _socket.Dispose();
            _sslStream?.Dispose();
            _networkStream.Dispose();
        }
        catch (Exception ex) when (IsConnectionError(ex))
        {
        }
        try
        {
            await _reader.CompleteAsync().ConfigureAwait(false);
        }
        catch (Exception ex) when (IsConnectionError(ex) || ex is InvalidOperationException)
        {
        }
        try
        {
            await _writer.CompleteAsync().ConfigureAwait(false);
        }
        catch (Exception ex) when (IsConnectionError(ex) || ex is InvalidOperationException)
        {
        }
        _ioCts.Dispose();
        _sessionCts.Dispose();
        Debug.Assert(_messageWriter is null);
    }
}
