using System.Collections.Concurrent;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using MailKit;
using MailKit.Net.Smtp;
using MailKit.Security;
using Microsoft.Extensions.Logging;
using MimeKit;
using Postern.Core.Configuration;
using Postern.Core.Spool;
using Postern.Core.Tenants;

namespace Postern.Core.Delivery;

/// <summary>
/// Delivers messages over SMTP with MailKit: the servers of a request in order, STARTTLS with the
/// region certificate as client certificate, and connections kept open for reuse, at most
/// <see cref="DeliveryOptions.MaxConnectionsPerDestination"/> to one server at a time, taken by tenants in turn. Every wait on the next hop
/// has its own limit (<see cref="DeliveryOptions.ConnectTimeout"/>, <see cref="DeliveryOptions.GreetingTimeout"/>,
/// <see cref="DeliveryOptions.CommandTimeout"/>, <see cref="DeliveryOptions.DataTimeout"/>), and a reply that
/// never comes is reported as such ("timed out waiting for the greeting from …").
/// </summary>
public sealed class SmtpDeliveryAgent : IAsyncDisposable
{
    private readonly DeliveryOptions _options;

    /// <summary>Delivery:BindAddresses, parsed once (validated at start).</summary>
    private readonly IReadOnlyList<IPAddress> _bindAddresses;
    private readonly string _hostName;
    private readonly ILogger _logger;
    /// <summary>Per server; guarded by itself. A pool nobody uses and with no idle connection is dropped by the sweeper.</summary>
    private readonly Dictionary<string, DestinationPool> _pools = new(StringComparer.Ordinal);
    private readonly Timer _sweeper;
    private readonly MxResolver _resolver;

    /// <summary>Host names of next hops are looked up through <paramref name="resolver"/>, like the MX lookup that found them.</summary>
    public SmtpDeliveryAgent(PosternOptions options, MxResolver resolver, ILogger<SmtpDeliveryAgent> logger)
    {
        _resolver = resolver;
        _options = options.Delivery;
        _bindAddresses = options.Delivery.BindAddressList;
        _hostName = options.HostName;
        _logger = logger;
        _sweeper = new Timer(_ => SweepIdle(), null, TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(5));
    }

    public async Task<DeliveryReport> DeliverAsync(DeliveryRequest request, CancellationToken cancellationToken)
    {
        var servers = new List<ServerAttempt>();
        foreach (var server in request.Servers)
        {
            var pool = Lease(PoolKey(server, request));
            try
            {
                await pool.Slots.WaitAsync(request.TenantId, cancellationToken).ConfigureAwait(false);
            }
            catch
            {
                Unlease(pool);
                throw;
            }
            RelaySmtpClient? client = null;
            try
            {
                client = pool.TakeIdle();
                var reused = client is not null;
                try
                {
                    client ??= await ConnectAsync(server, request, cancellationToken).ConfigureAwait(false);
                }
                catch (Exception ex) when (IsConnectionFailure(ex))
                {
                    var reply = ConnectionFailureReply(ex);
                    servers.Add(new ServerAttempt(server.ToString(), RecipientOutcome.Deferred, reply, request.Recipients));
                    _logger.LogInformation("{QueueId}: cannot use {Server}: {Reply}; trying the next server", request.QueueId, server, reply);
                    continue;
                }
                var (results, reusable, lost) = await SendAsync(client, server, request, cancellationToken).ConfigureAwait(false);
                if (lost && reused)
                {
                    // The server closed the idle connection while it waited in the pool: a fresh one, at once,
                    // rather than a deferral until the next retry.
                    await DisposeClientAsync(client).ConfigureAwait(false);
                    client = null;
                    try
                    {
                        client = await ConnectAsync(server, request, cancellationToken).ConfigureAwait(false);
                    }
                    catch (Exception ex) when (IsConnectionFailure(ex))
                    {
                        var reply = ConnectionFailureReply(ex);
                        servers.Add(new ServerAttempt(server.ToString(), RecipientOutcome.Deferred, reply, request.Recipients));
                        continue;
                    }
                    (results, reusable, _) = await SendAsync(client, server, request, cancellationToken).ConfigureAwait(false);
                }
                var outcome = results.All(r => r.Outcome == RecipientOutcome.Delivered) ? RecipientOutcome.Delivered
                    : results.Any(r => r.Outcome == RecipientOutcome.Deferred) ? RecipientOutcome.Deferred : RecipientOutcome.Failed;
                servers.Add(new ServerAttempt(server.ToString(), outcome, Summary(results), request.Recipients));
                if (reusable)
                {
                    pool.ReturnIdle(client);
                    client = null;
                }
                return new DeliveryReport(results, servers);
            }
            finally
            {
                if (client is not null)
                    await DisposeClientAsync(client).ConfigureAwait(false);
                pool.Slots.Release();
                Unlease(pool);
            }
        }
        var lastReply = servers.Count > 0 ? servers[^1].Reply : "no server to deliver to";
        return new DeliveryReport(
            request.Recipients.Select(r => new RecipientResult(r, RecipientOutcome.Deferred, "all servers failed; last: " + lastReply)).ToArray(),
            servers, Unreachable: true);
    }

    private async Task<RelaySmtpClient> ConnectAsync(MtaAddress server, DeliveryRequest request, CancellationToken cancellationToken)
    {
        var replies = new ServerReplyWatch();
        var client = new RelaySmtpClient(replies)
        {
            LocalDomain = _hostName,
            // Each wait below has its own limit; MailKit's single per-read timeout would cut them all alike.
            Timeout = System.Threading.Timeout.Infinite,
            SslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13,
            CheckCertificateRevocation = false,
            ClientCertificates = new X509CertificateCollection { request.ClientCertificate },
        };
        if (!_options.ValidateServerCertificate)
            client.ServerCertificateValidationCallback = (_, _, _, _) => true;
        try
        {
            Socket socket;
            using (var connect = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken))
            {
                connect.CancelAfter(_options.ConnectTimeout);
                try
                {
                    socket = await OpenSocketAsync(server, _resolver, _bindAddresses, connect.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
                {
                    throw new TimeoutException($"timed out connecting to {server} after {Seconds(_options.ConnectTimeout)}");
                }
            }
            using var greeting = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            greeting.CancelAfter(_options.GreetingTimeout);
            try
            {
                var tls = request.RequireTls ? SecureSocketOptions.StartTls : SecureSocketOptions.StartTlsWhenAvailable;
                await client.ConnectAsync(socket, server.Host, server.Port, tls, greeting.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                socket.Dispose();
                throw new TimeoutException(replies.Heard
                    ? $"timed out waiting for the reply to EHLO or STARTTLS from {server} after {Seconds(_options.GreetingTimeout)}"
                    : $"timed out waiting for the greeting from {server} after {Seconds(_options.GreetingTimeout)}");
            }
            catch
            {
                socket.Dispose();
                throw;
            }
            return client;
        }
        catch
        {
            client.Dispose();
            throw;
        }
    }

    private static string Seconds(TimeSpan timeout) => $"{timeout.TotalSeconds:0.###} s";

    /// <summary>
    /// A connected socket with Nagle's algorithm off: SMTP writes small commands and waits for replies,
    /// and Nagle plus the peer's delayed ACK would add up to 40 ms to every message. It leaves from the bind
    /// address of its family when one is configured (Delivery:BindAddresses).
    /// </summary>
    private static async Task<Socket> OpenSocketAsync(MtaAddress server, MxResolver resolver, IReadOnlyList<IPAddress> bind, CancellationToken cancellationToken)
    {
        // Host names go through Postern's own DNS settings (Postern:Dns), like the MX lookup that found them.
        var addresses = await resolver.ResolveHostAsync(server.Host, cancellationToken).ConfigureAwait(false);
        if (addresses.Count == 0)
            throw new SocketException((int)SocketError.HostNotFound);
        SocketException? last = null;
        foreach (var address in addresses)
        {
            var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            try
            {
                if (bind.FirstOrDefault(b => b.AddressFamily == address.AddressFamily) is { } local)
                    socket.Bind(new IPEndPoint(local, 0));
                await socket.ConnectAsync(address, server.Port, cancellationToken).ConfigureAwait(false);
                return socket;
            }
            catch (SocketException ex)
            {
                last = ex;
                socket.Dispose();
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        }
        throw last ?? new SocketException((int)SocketError.HostNotFound);
    }

    /// <summary>One transaction on <paramref name="client"/>; Lost when the connection failed under it.</summary>
    private async Task<(IReadOnlyList<RecipientResult> Results, bool Reusable, bool Lost)> SendAsync(RelaySmtpClient client, MtaAddress server,
        DeliveryRequest request, CancellationToken cancellationToken)
    {
        // The stored bytes go out as they are, with this delivery's fields on top: nothing is parsed or re-encoded.
        using var raw = RawMessage.Load(request.OpenMessage());
        // MimeKit writes header fields with CRLF whatever they hold: make them so first, so what is counted is what is sent.
        raw.UseCrlfLineEnds();
        // Below Postern's own Received line, so the trace fields stay on top (RFC 5321 §4.4).
        var at = raw.Fields.Count > 0 && string.Equals(raw.NameOf(0), "Received", StringComparison.OrdinalIgnoreCase) ? 1 : 0;
        for (var i = request.ExtraHeaders.Count - 1; i >= 0; i--)
            raw.Insert(at, RawMessage.Field(request.ExtraHeaders[i].Key, request.ExtraHeaders[i].Value));
        if (request.Prepare is not null)
            await request.Prepare(raw, cancellationToken).ConfigureAwait(false);
        var message = WireMimeMessage.Create(raw);
        var format = FormatOptions.Default.Clone();
        format.International = request.SmtpUtf8;

        var recipients = new List<MailboxAddress>();
        var results = new List<RecipientResult>();
        foreach (var address in request.Recipients)
        {
            if (TryMailbox(address, out var mailbox))
                recipients.Add(mailbox);
            else
                results.Add(new RecipientResult(address, RecipientOutcome.Failed, "553 5.1.3 Postern cannot send to this address"));
        }
        if (recipients.Count == 0)
            return (results, true, false);
        var sender = request.MailFrom.Length == 0 ? new MailboxAddress("", "") : TryMailbox(request.MailFrom, out var s) ? s : new MailboxAddress("", "");
        client.Rejected.Clear();
        client.MessageLength = WireMimeMessage.LengthOf(raw);
        using var phase = new TransactionPhases(_options, recipients.Count, cancellationToken);
        client.Phases = phase;
        try
        {
            var reply = await client.SendAsync(format, message, sender, recipients, phase.Token).ConfigureAwait(false);
            foreach (var mailbox in recipients)
            {
                if (client.Rejected.TryGetValue(mailbox.Address, out var rejected))
                    results.Add(new RecipientResult(mailbox.Address, Classify(rejected.StatusCode), Format(rejected)));
                else
                    results.Add(new RecipientResult(mailbox.Address, RecipientOutcome.Delivered, "250 " + reply));
            }
            return (results, true, false);
        }
        catch (SmtpCommandException ex)
        {
            var outcome = Classify(ex.StatusCode);
            foreach (var mailbox in recipients)
            {
                if (client.Rejected.TryGetValue(mailbox.Address, out var rejected))
                    results.Add(new RecipientResult(mailbox.Address, Classify(rejected.StatusCode), Format(rejected)));
                else
                    results.Add(new RecipientResult(mailbox.Address, outcome, $"{(int)ex.StatusCode} {ex.Message}"));
            }
            return (results, false, false);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            // The next hop stopped answering mid-transaction: the connection is in an unknown state and is dropped.
            var reply = $"timed out waiting for the reply to {phase.Current} from {server} after {Seconds(phase.Limit)}";
            foreach (var mailbox in recipients)
                results.Add(new RecipientResult(mailbox.Address, RecipientOutcome.Deferred, reply));
            return (results, false, false);
        }
        catch (Exception ex) when (ex is IOException or SmtpProtocolException or SocketException or TimeoutException or ServiceNotConnectedException)
        {
            foreach (var mailbox in recipients)
                results.Add(new RecipientResult(mailbox.Address, RecipientOutcome.Deferred, "connection lost during the transaction: " + ex.Message));
            return (results, false, true);
        }
    }

    private static bool TryMailbox(string address, out MailboxAddress mailbox)
    {
        try
        {
            mailbox = new MailboxAddress("", address);
            return true;
        }
        catch (ParseException)
        {
            mailbox = null!;
            return false;
        }
    }

    private static RecipientOutcome Classify(SmtpStatusCode code) =>
        (int)code >= 500 ? RecipientOutcome.Failed : (int)code >= 400 ? RecipientOutcome.Deferred : RecipientOutcome.Delivered;

    private static string Format(SmtpResponse response) => $"{(int)response.StatusCode} {response.Response}";

    private static string Summary(IReadOnlyList<RecipientResult> results) =>
        string.Join("; ", results.GroupBy(r => r.Reply).Select(g => g.Count() == results.Count ? g.Key : $"{g.Key} ({g.Count()})"));

    private static bool IsConnectionFailure(Exception ex) =>
        ex is SocketException or TimeoutException or IOException or SslHandshakeException or SmtpProtocolException
            or SmtpCommandException or NotSupportedException or System.Security.Authentication.AuthenticationException
            or DnsLookupFailedException;

    private static string ConnectionFailureReply(Exception ex) => ex switch
    {
        NotSupportedException => "STARTTLS required but not offered",
        SslHandshakeException => "TLS handshake failed: " + ex.Message.Split('\n')[0],
        SmtpCommandException c => $"{(int)c.StatusCode} {c.Message}",
        SocketException s => $"connection failed: {s.SocketErrorCode}",
        _ => ex.Message.Split('\n')[0],
    };

    private string PoolKey(MtaAddress server, DeliveryRequest request) =>
        $"{server}|{request.RequireTls}|{request.ClientCertificate.Thumbprint}";

    private DestinationPool Lease(string key)
    {
        lock (_pools)
        {
            if (!_pools.TryGetValue(key, out var pool))
                _pools[key] = pool = new DestinationPool(_options.MaxConnectionsPerDestination);
            pool.Users++;
            return pool;
        }
    }

    private void Unlease(DestinationPool pool)
    {
        lock (_pools)
            pool.Users--;
    }

    private void SweepIdle()
    {
        var cutoff = DateTime.UtcNow - _options.IdleConnectionTimeout;
        var expired = new List<RelaySmtpClient>();
        lock (_pools)
        {
            foreach (var (key, pool) in _pools.ToList())
            {
                expired.AddRange(pool.TakeExpired(cutoff));
                // Servers no longer delivered to cost nothing.
                if (pool.Users == 0 && pool.IdleCount == 0)
                    _pools.Remove(key);
            }
        }
        foreach (var client in expired)
            _ = DisposeClientAsync(client);
    }

    private static async Task DisposeClientAsync(RelaySmtpClient client)
    {
        try
        {
            if (client.IsConnected)
            {
                using var quit = new CancellationTokenSource(TimeSpan.FromSeconds(5));
                await client.DisconnectAsync(true, quit.Token).ConfigureAwait(false);
            }
        }
        catch (Exception)
        {
            // The connection is going away either way.
        }
        client.Dispose();
    }

    public async ValueTask DisposeAsync()
    {
        await _sweeper.DisposeAsync().ConfigureAwait(false);
        List<RelaySmtpClient> open;
        lock (_pools)
            open = _pools.Values.SelectMany(p => p.TakeExpired(DateTime.MaxValue)).ToList();
        foreach (var client in open)
            await DisposeClientAsync(client).ConfigureAwait(false);
    }

    /// <summary>Connections to one destination: a cap on how many are busy, and the idle ones kept for reuse.</summary>
    private sealed class DestinationPool(int maxConnections)
    {
        private readonly ConcurrentStack<(RelaySmtpClient Client, DateTime Since)> _idle = new();

        public ConnectionSlots Slots { get; } = new(maxConnections);

        /// <summary>Deliveries holding or waiting for a slot; guarded by the agent's pool lock.</summary>
        public int Users { get; set; }

        public int IdleCount => _idle.Count;

        public RelaySmtpClient? TakeIdle()
        {
            while (_idle.TryPop(out var entry))
            {
                if (entry.Client.IsConnected)
                    return entry.Client;
                entry.Client.Dispose();
            }
            return null;
        }

        public void ReturnIdle(RelaySmtpClient client) => _idle.Push((client, DateTime.UtcNow));

        public List<RelaySmtpClient> TakeExpired(DateTime cutoff)
        {
            var keep = new List<(RelaySmtpClient, DateTime)>();
            var expired = new List<RelaySmtpClient>();
            while (_idle.TryPop(out var entry))
            {
                if (entry.Since < cutoff || !entry.Client.IsConnected)
                    expired.Add(entry.Client);
                else
                    keep.Add(entry);
            }
            foreach (var entry in keep)
                _idle.Push(entry);
            return expired;
        }
    }

    /// <summary>
    /// The limit on each wait of a transaction (Postfix's smtp_mail_timeout, smtp_rcpt_timeout, smtp_data_*_timeout):
    /// one timer, set again as each reply arrives, so a slow but live next hop is not cut off by the total.
    /// </summary>
    private sealed class TransactionPhases : IDisposable
    {
        private readonly DeliveryOptions _options;
        private readonly CancellationTokenSource _timer;
        private int _recipientsLeft;

        public TransactionPhases(DeliveryOptions options, int recipients, CancellationToken cancellationToken)
        {
            _options = options;
            _recipientsLeft = recipients;
            _timer = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            Enter("MAIL FROM", options.CommandTimeout);
        }

        public CancellationToken Token => _timer.Token;

        /// <summary>The command whose reply is awaited, for the trace.</summary>
        public string Current { get; private set; } = "";

        public TimeSpan Limit { get; private set; }

        public void SenderAccepted() => Enter("RCPT TO", _options.CommandTimeout);

        public void RecipientAnswered()
        {
            if (--_recipientsLeft > 0)
                Enter("RCPT TO", _options.CommandTimeout);
            else
                Enter("DATA", _options.DataTimeout);
        }

        private void Enter(string command, TimeSpan limit)
        {
            Current = command;
            Limit = limit;
            try
            {
                _timer.CancelAfter(limit);
            }
            catch (ObjectDisposedException)
            {
                // A reply that came after the transaction ended.
            }
        }

        public void Dispose() => _timer.Dispose();
    }

    /// <summary>Notices whether the server has said anything yet: a greeting that never came is told apart from a slow EHLO.</summary>
    private sealed class ServerReplyWatch : IProtocolLogger
    {
        public volatile bool Heard;

        public IAuthenticationSecretDetector? AuthenticationSecretDetector { get; set; }

        public void LogConnect(Uri uri)
        {
        }

        public void LogClient(byte[] buffer, int offset, int count)
        {
        }

        public void LogServer(byte[] buffer, int offset, int count) => Heard |= count > 0;

        public void Dispose()
        {
        }
    }

    /// <summary>MailKit's client, remembering rejected recipients instead of failing the whole send.</summary>
    private sealed class RelaySmtpClient(IProtocolLogger replies) : SmtpClient(replies)
    {
        public Dictionary<string, SmtpResponse> Rejected { get; } = new(StringComparer.OrdinalIgnoreCase);

        /// <summary>The timer of the transaction in progress; moved on as each reply arrives.</summary>
        public TransactionPhases? Phases { get; set; }

        protected override void OnSenderAccepted(MimeMessage message, MailboxAddress mailbox, SmtpResponse response)
        {
            base.OnSenderAccepted(message, mailbox, response);
            Phases?.SenderAccepted();
        }

        protected override void OnRecipientAccepted(MimeMessage message, MailboxAddress mailbox, SmtpResponse response)
        {
            base.OnRecipientAccepted(message, mailbox, response);
            Phases?.RecipientAnswered();
        }

        /// <summary>Length of the message being sent, known without writing it out once more to measure it.</summary>
        public long MessageLength { get; set; }

        /// <summary>BDAT whenever the next hop offers CHUNKING (Exchange Online does): no dot-stuffing, the size announced up front.</summary>
        protected override bool PreferSendAsBinaryData => true;

        protected override long GetSize(FormatOptions options, MimeMessage message, CancellationToken cancellationToken) => MessageLength;

        protected override Task<long> GetSizeAsync(FormatOptions options, MimeMessage message, CancellationToken cancellationToken) =>
            Task.FromResult(MessageLength);

        protected override void OnRecipientNotAccepted(MimeMessage message, MailboxAddress mailbox, SmtpResponse response)
        {
            Rejected[mailbox.Address] = response;
            Phases?.RecipientAnswered();
        }

        /// <summary>Always present the region certificate when asked, whatever issuers the server lists
        /// (.NET's default choice sends nothing when the certificate's issuer is not among them).</summary>
        protected override SslClientAuthenticationOptions GetSslClientAuthenticationOptions(string host, RemoteCertificateValidationCallback certificateValidationCallback)
        {
            var options = base.GetSslClientAuthenticationOptions(host, certificateValidationCallback);
            if (ClientCertificates is { Count: > 0 } certificates)
            {
                var certificate = certificates[0];
                options.ClientCertificates = null;
                options.LocalCertificateSelectionCallback = (_, _, _, _, _) => certificate;
            }
            return options;
        }
    }
}
