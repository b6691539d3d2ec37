using System.Buffers;
using System.ComponentModel;
using System.IO.Pipelines;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Security.Authentication;
using Microsoft.Extensions.Logging;

namespace Postern.Smtp.Internal;

/// <summary>
/// One SMTP connection. A single loop reads commands from a <see cref="PipeReader"/>, executes every complete
/// command already buffered, and flushes the accumulated replies only before it waits for more input (RFC 2920).
/// </summary>
internal sealed partial class SmtpSession
{
    // Zero-byte reads: an idle session holds no read buffer at all, so thousands of idle connections cost little
    // more than their sockets. A session that is sending reads 16 KB at a time (a 46 KB message in three reads
    // rather than twelve: each read is a system call, and on a VM a costly one).
    private static readonly StreamPipeReaderOptions ReaderOptions = new(pool: MemoryPool<byte>.Shared, bufferSize: 16 * 1024, minimumReadSize: 4096, leaveOpen: true, useZeroByteReads: true);
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
    private ContentChecker _content;
    private SmtpReply? _contentFailure;
    private bool _bdatInProgress;
    private SmtpReply? _bdatFailure;

    private int _errors;
    private int _commandsWithoutProgress;
    private bool _progress;
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
        using var scope = _logger.BeginScope(new SessionLogScope(Info.SessionId, Info.RemoteEndPoint));
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
            await CloseGracefullyAsync(reason).ConfigureAwait(false);
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
                            return ClientDisconnected;
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
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<string?> ExecuteAsync(ReadOnlySequence<byte> line)
    {
        var command = Parse(line);
        // Bounds every loop a client could spin without delivering anything (NOOP floods, MAIL/RSET cycles,
        // endless refused RCPTs); accepted recipients and message content are progress, an accepted message resets.
        if (_commandsWithoutProgress >= _limits.MaxCommandsWithoutProgress)
        {
            Write(SmtpReplies.TooManyCommands);
            Log.SessionClosedByServer(_logger, Info.SessionId, Info.RemoteEndPoint, "too many commands without progress");
            return "too many commands without progress";
        }
        _progress = false;
        var close = await DispatchAsync(command).ConfigureAwait(false);
        if (!_progress)
        {
            _commandsWithoutProgress++;
        }
        return close;
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<string?> DispatchAsync(SmtpCommand command)
    {
        var verb = command.Verb;
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
                _progress = true;
                return ClientQuit;

            default:
                return Error(SmtpReplies.CommandUnrecognized);
        }
    }
}
