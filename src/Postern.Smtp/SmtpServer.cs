using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Postern.Smtp.Internal;

namespace Postern.Smtp;

/// <summary>
/// The SMTP server: accepts connections on each listener and runs one session per connection.
/// Connection limits are applied at accept time, before any session work; every session is independent,
/// so a failure in one (including a handler exception) never touches another.
/// </summary>
public sealed class SmtpServer : IAsyncDisposable
{
    private const int ListenBacklog = 512;
    private static readonly TimeSpan DisposeGrace = TimeSpan.FromSeconds(2);

    private readonly ListenerContext[] _listeners;
    private readonly SmtpLimits _limits;
    private readonly ILogger _logger;
    private readonly SessionHost _host;
    private readonly ConnectionLimiter _limiter;
    private readonly ConcurrentDictionary<SmtpSession, Task> _sessions = new();
    private readonly CancellationTokenSource _acceptCts = new();
    private readonly Lock _stateLock = new();
    private readonly string _sessionIdPrefix;
    private IPEndPoint[] _boundEndPoints = [];
    private long _sessionCounter;
    private State _state;
    private Task? _stopTask;

    private enum State
    {
        Created,
        Started,
        Stopping,
        Disposed,
    }

    /// <summary>Creates a server; nothing is bound until <see cref="StartAsync"/>.</summary>
    /// <exception cref="ArgumentException">A listener or limit is unusable; the message names it.</exception>
    public SmtpServer(IReadOnlyList<SmtpListenerOptions> listeners, SmtpLimits limits, ISmtpTransactionHandler handler, ILoggerFactory loggerFactory)
    {
        ArgumentNullException.ThrowIfNull(listeners);
        ArgumentNullException.ThrowIfNull(limits);
        ArgumentNullException.ThrowIfNull(handler);
        ArgumentNullException.ThrowIfNull(loggerFactory);
        if (listeners.Count == 0)
        {
            throw new ArgumentException("At least one SMTP listener is required.", nameof(listeners));
        }
        Validate(limits);
        foreach (var listener in listeners)
        {
            Validate(listener);
        }
        _limits = limits;
        _logger = loggerFactory.CreateLogger("Postern.Smtp.SmtpServer");
        _host = new SessionHost(limits, handler, loggerFactory.CreateLogger("Postern.Smtp.SmtpSession"));
        _limiter = new ConnectionLimiter(limits.MaxConnections, limits.MaxConnectionsPerIp);
        _listeners = listeners.Select(l => new ListenerContext(l, limits)).ToArray();
        // Session ids stay unique across restarts: a time-based prefix plus a per-process counter.
        _sessionIdPrefix = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds().ToString("x", null);
    }

    /// <summary>The endpoints actually bound (port 0 in options becomes the real port), in listener order. Empty before start.</summary>
    public IReadOnlyList<IPEndPoint> BoundEndPoints => _boundEndPoints;

    /// <summary>Number of sessions currently open.</summary>
    public int ActiveSessions => _sessions.Count;

    /// <summary>Binds every listener and starts accepting. Throws when a port cannot be bound.</summary>
    /// <exception cref="InvalidOperationException">The server was already started.</exception>
    public Task StartAsync(CancellationToken cancellationToken)
    {
        lock (_stateLock)
        {
            ObjectDisposedException.ThrowIf(_state == State.Disposed, this);
            if (_state != State.Created)
            {
                throw new InvalidOperationException("The SMTP server was already started.");
            }
            cancellationToken.ThrowIfCancellationRequested();
            var bound = new List<IPEndPoint>();
            try
            {
                foreach (var listener in _listeners)
                {
                    var endPoint = listener.Options.EndPoint;
                    var socket = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
                    listener.Socket = socket;
                    if (endPoint.AddressFamily == AddressFamily.InterNetworkV6 && endPoint.Address.Equals(IPAddress.IPv6Any))
                    {
                        socket.DualMode = true;
                    }
                    try
                    {
                        socket.Bind(endPoint);
                    }
                    catch (SocketException ex)
                    {
                        throw new IOException($"SMTP listener '{listener.Options.Name}' cannot bind {endPoint}: {ex.Message}. Free the port or change the listener's endpoint.", ex);
                    }
                    socket.Listen(ListenBacklog);
                    bound.Add((IPEndPoint)socket.LocalEndPoint!);
                    SmtpMetrics.ListenerStarted(listener.Options.Name);
                }
            }
            catch
            {
                foreach (var listener in _listeners)
                {
                    listener.Socket?.Dispose();
                    listener.Socket = null;
                }
                throw;
            }
            _boundEndPoints = bound.ToArray();
            _state = State.Started;
            for (var i = 0; i < _listeners.Length; i++)
            {
                Log.Listening(_logger, _listeners[i].Options.Name, _boundEndPoints[i]);
                var listener = _listeners[i];
                listener.AcceptLoop = Task.Run(() => AcceptLoopAsync(listener), CancellationToken.None);
            }
        }
        return Task.CompletedTask;
    }

    /// <summary>
    /// Stops accepting; open sessions get 421 4.3.2 at their next command and are closed. Sessions in the middle of
    /// a message finish it first. When <paramref name="cancellationToken"/> fires, the remaining sessions are aborted.
    /// </summary>
    public Task StopAsync(CancellationToken cancellationToken)
    {
        Task stop;
        lock (_stateLock)
        {
            if (_state is State.Created or State.Disposed)
            {
                return Task.CompletedTask;
            }
            if (_stopTask is null)
            {
                _state = State.Stopping;
                _stopTask = StopCoreAsync();
            }
            stop = _stopTask;
        }
        return WaitOrAbortAsync(stop, cancellationToken);
    }

    private async Task StopCoreAsync()
    {
        _host.SignalStopping();
        _acceptCts.Cancel();
        foreach (var listener in _listeners)
        {
            listener.Socket?.Dispose();
        }
        foreach (var listener in _listeners)
        {
            if (listener.AcceptLoop is { } loop)
            {
                await loop.ConfigureAwait(false);
            }
        }
        Log.Stopping(_logger, _sessions.Count);
        foreach (var session in _sessions.Keys)
        {
            session.RequestStop();
        }
        await Task.WhenAll(_sessions.Values).ConfigureAwait(false);
    }

    private async Task WaitOrAbortAsync(Task stop, CancellationToken cancellationToken)
    {
        try
        {
            await stop.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            Log.AbortingSessions(_logger, _sessions.Count);
            foreach (var session in _sessions.Keys)
            {
                session.Abort();
            }
            await stop.ConfigureAwait(false);
        }
    }

    /// <summary>Stops the server if it is running (aborting sessions that don't end within two seconds) and releases its sockets.</summary>
    public async ValueTask DisposeAsync()
    {
        lock (_stateLock)
        {
            if (_state == State.Disposed)
            {
                return;
            }
        }
        using (var grace = new CancellationTokenSource(DisposeGrace))
        {
            await StopAsync(grace.Token).ConfigureAwait(false);
        }
        lock (_stateLock)
        {
            _state = State.Disposed;
        }
        foreach (var listener in _listeners)
        {
            listener.Socket?.Dispose();
        }
        _acceptCts.Dispose();
    }

    private async Task AcceptLoopAsync(ListenerContext listener)
    {
        var socket = listener.Socket!;
        while (!_acceptCts.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await socket.AcceptAsync(_acceptCts.Token).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException || _acceptCts.IsCancellationRequested)
            {
                break;
            }
            catch (SocketException ex)
            {
                // Typically out of file descriptors or a connection reset before accept; back off briefly rather than spin.
                Log.AcceptFailed(_logger, ex, listener.Options.Name);
                try
                {
                    await Task.Delay(TimeSpan.FromMilliseconds(100), _acceptCts.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    break;
                }
                continue;
            }
            Admit(listener, client);
        }
    }

    private void Admit(ListenerContext listener, Socket client)
    {
        IPEndPoint remote, local;
        try
        {
            client.NoDelay = true;
            remote = (IPEndPoint)client.RemoteEndPoint!;
            local = (IPEndPoint)client.LocalEndPoint!;
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            client.Dispose(); // gone before we looked at it
            return;
        }
        var address = ConnectionLimiter.Normalize(remote.Address);
        if (!ReferenceEquals(address, remote.Address))
        {
            remote = new IPEndPoint(address, remote.Port); // the handler sees 192.0.2.1, not ::ffff:192.0.2.1
        }
        if (!listener.Allows(address))
        {
            Refuse(listener, client, remote, SmtpReplies.ClientNotAllowed);
            return;
        }
        var admission = _limiter.TryAcquire(address);
        if (admission != Admission.Admitted)
        {
            Refuse(listener, client, remote, admission == Admission.TooManyFromAddress ? SmtpReplies.TooManyConnectionsFromAddress : SmtpReplies.TooManyConnections);
            return;
        }
        var id = NextSessionId();
        SmtpSession session;
        try
        {
            session = new SmtpSession(_host, listener, client, id, remote, local);
        }
        catch (Exception ex)
        {
            // Never let one connection take the accept loop down.
            Log.AcceptFailed(_logger, ex, listener.Options.Name);
            _limiter.Release(address);
            client.Dispose();
            return;
        }
        SmtpMetrics.SessionStarted(listener.Options.Name);
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var task = RunSessionAsync(session, address, started.Task);
        _sessions[session] = task;
        started.SetResult();
    }

    private async Task RunSessionAsync(SmtpSession session, IPAddress address, Task registered)
    {
        // Run on the pool, after registration, so the accept loop never waits for a session and StopAsync sees every session.
        await registered.ConfigureAwait(false);
        try
        {
            await session.RunAsync().ConfigureAwait(false);
        }
        finally
        {
            _limiter.Release(address);
            _sessions.TryRemove(session, out _);
        }
    }

    /// <summary>
    /// One reply line in place of the greeting, then closed, inline in the accept loop: nothing of a refused connection
    /// outlives this call, so a flood of them holds no sockets or tasks here. The line fits in the socket's send
    /// buffer; a client that does not read it loses only the reply.
    /// </summary>
    private void Refuse(ListenerContext listener, Socket client, IPEndPoint remote, SmtpReply reply)
    {
        Log.ConnectionRefused(_logger, remote, listener.Options.Name, reply.Text);
        try
        {
            client.Blocking = false;
            client.Send(System.Text.Encoding.ASCII.GetBytes($"{reply.Code} {reply.EnhancedCode} {reply.Text}\r\n"), SocketFlags.None, out _);
            client.Shutdown(SocketShutdown.Send);
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
        }
        finally
        {
            client.Dispose();
        }
    }

    private string NextSessionId() => $"{_sessionIdPrefix}-{Interlocked.Increment(ref _sessionCounter):x}";

    private static void Validate(SmtpLimits limits)
    {
        static void Positive(long value, string name)
        {
            if (value <= 0)
            {
                throw new ArgumentException($"SMTP limit {name} must be positive (got {value}).", nameof(limits));
            }
        }
        Positive(limits.MaxCommandLineLength, nameof(SmtpLimits.MaxCommandLineLength));
        if (limits.MaxCommandLineLength < 512)
        {
            throw new ArgumentException($"SMTP limit {nameof(SmtpLimits.MaxCommandLineLength)} must be at least 512 (RFC 5321 §4.5.3.1.4).", nameof(limits));
        }
        if (limits.MaxTextLineLength < 1000)
        {
            throw new ArgumentException($"SMTP limit {nameof(SmtpLimits.MaxTextLineLength)} must be at least 1000 (RFC 5321 §4.5.3.1.6).", nameof(limits));
        }
        Positive(limits.MaxMessageSize, nameof(SmtpLimits.MaxMessageSize));
        Positive(limits.MaxHeaderSectionSize, nameof(SmtpLimits.MaxHeaderSectionSize));
        Positive(limits.MaxRecipients, nameof(SmtpLimits.MaxRecipients));
        Positive(limits.MaxCommandsWithoutProgress, nameof(SmtpLimits.MaxCommandsWithoutProgress));
        Positive(limits.MaxErrors, nameof(SmtpLimits.MaxErrors));
        Positive(limits.MaxConnectionsPerIp, nameof(SmtpLimits.MaxConnectionsPerIp));
        Positive(limits.MaxConnections, nameof(SmtpLimits.MaxConnections));
        if (limits.IdleTimeout <= TimeSpan.Zero && limits.IdleTimeout != Timeout.InfiniteTimeSpan)
        {
            throw new ArgumentException($"SMTP limit {nameof(SmtpLimits.IdleTimeout)} must be positive.", nameof(limits));
        }
        if (limits.SessionTimeout <= TimeSpan.Zero && limits.SessionTimeout != Timeout.InfiniteTimeSpan)
        {
            throw new ArgumentException($"SMTP limit {nameof(SmtpLimits.SessionTimeout)} must be positive.", nameof(limits));
        }
    }

    private static void Validate(SmtpListenerOptions listener)
    {
        ArgumentNullException.ThrowIfNull(listener);
        ArgumentNullException.ThrowIfNull(listener.EndPoint);
        var host = listener.HostName;
        if (string.IsNullOrEmpty(host) || host.Length > 255 || host.Any(c => c is <= ' ' or > '~'))
        {
            throw new ArgumentException($"SMTP listener '{listener.Name}': HostName must be a non-empty ASCII host name without spaces.", nameof(listener));
        }
        if (listener.RequireTls && listener.Certificate is null)
        {
            throw new ArgumentException($"SMTP listener '{listener.Name}' requires TLS but has no certificate; set Certificate or RequireTls = false.", nameof(listener));
        }
        ArgumentNullException.ThrowIfNull(listener.AllowedClientNetworks);
        if (listener.Certificate is { HasPrivateKey: false })
        {
            throw new ArgumentException($"SMTP listener '{listener.Name}': the certificate '{listener.Certificate.Subject}' has no private key.", nameof(listener));
        }
    }
}
