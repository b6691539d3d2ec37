using System.Buffers;
using System.IO.Pipelines;
using System.Net.Sockets;
using System.Runtime.CompilerServices;

namespace Postern.Smtp.Internal;

// Replies, reads with timeouts, flushing and closing.
internal sealed partial class SmtpSession
{
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
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
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

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
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

    private const string ClientQuit = "quit";
    private const string ClientDisconnected = "client disconnected";

    /// <summary>
    /// Sends what is pending, then half-closes and briefly drains input: closing a socket with unread input makes
    /// the kernel send RST, which can destroy our last reply before the client reads it. There is nothing to
    /// drain when the client has closed its side, or has said QUIT on a plain connection and sent nothing after
    /// it: the close then sends FIN alone. (Draining there cost a system call or two and, once the client's RST
    /// answered our FIN, a SocketException per session.)
    /// </summary>
    private async ValueTask CloseGracefullyAsync(string reason)
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
        if (reason == ClientDisconnected || (reason == ClientQuit && _sslStream is null && _socket.Available == 0))
        {
            return;
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
    }
}
