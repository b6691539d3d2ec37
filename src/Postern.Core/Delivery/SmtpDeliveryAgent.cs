using System.Collections.Concurrent;
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
/// <see cref="DeliveryOptions.MaxConnectionsPerDestination"/> to one destination at a time.
/// </summary>
public sealed class SmtpDeliveryAgent : IAsyncDisposable
{
    private readonly DeliveryOptions _options;
    private readonly string _hostName;
    private readonly ILogger _logger;
    private readonly ConcurrentDictionary<string, DestinationPool> _pools = new();
    private readonly Timer _sweeper;

    private readonly MxResolver _resolver;

    public SmtpDeliveryAgent(PosternOptions options, ILogger<SmtpDeliveryAgent> logger)
    {
        _resolver = new MxResolver(options.Dns);
        _options = options.Delivery;
        _hostName = options.HostName;
        _logger = logger;
        _sweeper = new Timer(_ => SweepIdle(), null, TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(5));
    }

    public async Task<DeliveryReport> DeliverAsync(DeliveryRequest request, CancellationToken cancellationToken)
    {
        var servers = new List<ServerAttempt>();
        foreach (var server in request.Servers)
        {
            var pool = _pools.GetOrAdd(PoolKey(server, request), _ => new DestinationPool(_options.MaxConnectionsPerDestination));
            await pool.Slots.WaitAsync(cancellationToken).ConfigureAwait(false);
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
                var (results, reusable, lost) = await SendAsync(client, request, cancellationToken).ConfigureAwait(false);
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
                    (results, reusable, _) = await SendAsync(client, request, cancellationToken).ConfigureAwait(false);
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
            }
        }
        var lastReply = servers.Count > 0 ? servers[^1].Reply : "no server to deliver to";
        return new DeliveryReport(
            request.Recipients.Select(r => new RecipientResult(r, RecipientOutcome.Deferred, "all servers failed; last: " + lastReply)).ToArray(),
            servers);
    }

    private async Task<RelaySmtpClient> ConnectAsync(MtaAddress server, DeliveryRequest request, CancellationToken cancellationToken)
    {
        var client = new RelaySmtpClient
        {
            LocalDomain = _hostName,
            Timeout = (int)_options.CommandTimeout.TotalMilliseconds,
            SslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13,
            CheckCertificateRevocation = false,
            ClientCertificates = new X509CertificateCollection { request.ClientCertificate },
        };
        if (!_options.ValidateServerCertificate)
            client.ServerCertificateValidationCallback = (_, _, _, _) => true;
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(_options.ConnectTimeout);
        try
        {
            var tls = request.RequireTls ? SecureSocketOptions.StartTls : SecureSocketOptions.StartTlsWhenAvailable;
            var socket = await OpenSocketAsync(server, _resolver, timeout.Token).ConfigureAwait(false);
            try
            {
                await client.ConnectAsync(socket, server.Host, server.Port, tls, timeout.Token).ConfigureAwait(false);
            }
            catch
            {
                socket.Dispose();
                throw;
            }
            return client;
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            client.Dispose();
            throw new TimeoutException($"connection to {server} timed out after {_options.ConnectTimeout.TotalSeconds:0} s");
        }
        catch
        {
            client.Dispose();
            throw;
        }
    }

    /// <summary>
    /// A connected socket with Nagle's algorithm off: SMTP writes small commands and waits for replies,
    /// and Nagle plus the peer's delayed ACK would add up to 40 ms to every message.
    /// </summary>
    private static async Task<Socket> OpenSocketAsync(MtaAddress server, MxResolver resolver, CancellationToken cancellationToken)
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
    private static async Task<(IReadOnlyList<RecipientResult> Results, bool Reusable, bool Lost)> SendAsync(RelaySmtpClient client, DeliveryRequest request, CancellationToken cancellationToken)
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
        try
        {
            var reply = await client.SendAsync(format, message, sender, recipients, cancellationToken).ConfigureAwait(false);
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
            or DnsClient.DnsResponseException;

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

    private void SweepIdle()
    {
        var cutoff = DateTime.UtcNow - _options.IdleConnectionTimeout;
        foreach (var pool in _pools.Values)
            foreach (var client in pool.TakeExpired(cutoff))
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
        foreach (var pool in _pools.Values)
            foreach (var client in pool.TakeExpired(DateTime.MaxValue))
                await DisposeClientAsync(client).ConfigureAwait(false);
    }

    /// <summary>Connections to one destination: a cap on how many are busy, and the idle ones kept for reuse.</summary>
    private sealed class DestinationPool(int maxConnections)
    {
        private readonly ConcurrentStack<(RelaySmtpClient Client, DateTime Since)> _idle = new();

        public SemaphoreSlim Slots { get; } = new(maxConnections, maxConnections);

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

    /// <summary>MailKit's client, remembering rejected recipients instead of failing the whole send.</summary>
    private sealed class RelaySmtpClient : SmtpClient
    {
        public Dictionary<string, SmtpResponse> Rejected { get; } = new(StringComparer.OrdinalIgnoreCase);

        /// <summary>Length of the message being sent, known without writing it out once more to measure it.</summary>
        public long MessageLength { get; set; }

        /// <summary>BDAT whenever the next hop offers CHUNKING (Exchange Online does): no dot-stuffing, the size announced up front.</summary>
        protected override bool PreferSendAsBinaryData => true;

        protected override long GetSize(FormatOptions options, MimeMessage message, CancellationToken cancellationToken) => MessageLength;

        protected override Task<long> GetSizeAsync(FormatOptions options, MimeMessage message, CancellationToken cancellationToken) =>
            Task.FromResult(MessageLength);

        protected override void OnRecipientNotAccepted(MimeMessage message, MailboxAddress mailbox, SmtpResponse response) =>
            Rejected[mailbox.Address] = response;

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
