using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using MailKit;
using MailKit.Net.Smtp;
using MailKit.Security;
using MimeKit;
using AuthenticationException = System.Security.Authentication.AuthenticationException;

namespace Postern.ExoEmulator.MailFlow;

/// <summary>A message a tenant sends on through one of its outbound connectors.</summary>
internal sealed record ConnectorJob(TenantMailView Tenant, ExoRecord Connector, string Id, string MailFrom, IReadOnlyList<string> Recipients,
    RawMail Mail, bool RequireTls);

/// <summary>
/// Exchange Online's side of an outbound connector: the smart hosts in turn, TLS as TlsSettings says
/// (EncryptionOnly: any certificate; CertificateValidation: a trusted chain; DomainValidation: a trusted chain whose
/// name matches TlsDomain), its own client certificate presented. A 4xx, an unreachable host or a failed TLS check is
/// retried on <see cref="MailFlowOptions.RetryDelays"/> until <see cref="MailFlowOptions.MaxAge"/>, then the sender
/// gets an NDR with 550 4.4.7 QUEUE.Expired; a 5xx gets the NDR at once.
/// </summary>
internal sealed class ConnectorDelivery(ExoTransport transport, MailFlowOptions options, MailFlowLog log, X509Certificate2 clientCertificate)
{
    private readonly CancellationTokenSource _stopping = new();
    private readonly List<Task> _running = [];

    public void Enqueue(ConnectorJob job)
    {
        lock (_running)
        {
            _running.RemoveAll(t => t.IsCompleted);
            _running.Add(Task.Run(() => RunAsync(job)));
        }
    }

    public async Task StopAsync()
    {
        await _stopping.CancelAsync();
        Task[] running;
        lock (_running)
            running = [.. _running];
        await Task.WhenAll(running).WaitAsync(TimeSpan.FromSeconds(10)).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
    }

    private async Task RunAsync(ConnectorJob job)
    {
        var started = DateTimeOffset.UtcNow;
        var attempt = 0;
        while (!_stopping.IsCancellationRequested)
        {
            var (delivered, permanent, reply) = await TryOnceAsync(job);
            var tenant = job.Tenant.Name;
            if (delivered)
            {
                log.Add(job.Id, tenant, "relayed", $"through connector '{job.Connector.Name}' to {reply}");
                return;
            }
            if (permanent)
            {
                log.Add(job.Id, tenant, "ndr", reply);
                transport.ReturnToSender(job.Tenant, job.Id, job.MailFrom, job.Recipients, job.Mail, reply);
                return;
            }
            var delay = options.RetryDelays[Math.Min(attempt++, options.RetryDelays.Count - 1)];
            if (DateTimeOffset.UtcNow + delay - started > options.MaxAge)
            {
                var expired = $"550 4.4.7 QUEUE.Expired; message expired (last error: {reply})";
                log.Add(job.Id, tenant, "ndr", expired);
                transport.ReturnToSender(job.Tenant, job.Id, job.MailFrom, job.Recipients, job.Mail, expired);
                return;
            }
            log.Add(job.Id, tenant, "deferred", $"{reply}; next try in {delay.TotalSeconds:0.#} s");
            try
            {
                await Task.Delay(delay, _stopping.Token);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    /// <summary>One attempt over the connector's smart hosts: delivered, permanently refused, or worth a retry (with why).</summary>
    private async Task<(bool Delivered, bool Permanent, string Reply)> TryOnceAsync(ConnectorJob job)
    {
        var hosts = job.Connector.List("SmartHosts");
        if (hosts.Count == 0)
            return (false, false, "451 4.4.0 the connector has no smart host");
        var errors = new List<string>();
        foreach (var host in hosts)
        {
            IPEndPoint endPoint;
            if (options.SmartHostAddresses.TryGetValue(host, out var mapped))
                endPoint = mapped;
            else if (IPAddress.TryParse(host, out var literal))
                endPoint = new IPEndPoint(literal, 25);
            else
            {
                errors.Add($"{host}: 451 4.4.0 DNS query failed (the emulator resolves only the smart hosts it was given)");
                continue;
            }
            try
            {
                var reply = await SendAsync(job, host, endPoint);
                return (true, false, $"{host} ({endPoint}): {reply}");
            }
            catch (SmtpCommandException ex) when ((int)ex.StatusCode >= 500)
            {
                return (false, true, $"{(int)ex.StatusCode} {ex.Message} (from {host})");
            }
            catch (SmtpCommandException ex)
            {
                errors.Add($"{host}: {(int)ex.StatusCode} {ex.Message}");
            }
            catch (Exception ex) when (ex is SocketException or IOException or SmtpProtocolException or SslHandshakeException or AuthenticationException
                or OperationCanceledException or ServiceNotConnectedException or NotSupportedException)
            {
                errors.Add($"{host}: 451 4.4.317 {Describe(ex)}");
            }
        }
        return (false, false, string.Join("; ", errors));
    }

    private async Task<string> SendAsync(ConnectorJob job, string host, IPEndPoint endPoint)
    {
        var tlsSettings = job.Connector.Text("TlsSettings");
        var tlsDomain = job.Connector.Text("TlsDomain");
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token);
        timeout.CancelAfter(options.ConnectTimeout + TimeSpan.FromSeconds(60));
        using var client = new SmtpClient { Timeout = (int)options.ConnectTimeout.TotalMilliseconds * 3 };
        if (options.EgressAddress is { } egress)
            client.LocalEndPoint = new IPEndPoint(egress, 0);
        client.ClientCertificates = new X509CertificateCollection { clientCertificate };
        client.CheckCertificateRevocation = false;
        string? refusal = null;
        client.ServerCertificateValidationCallback = (_, certificate, chain, errors) =>
        {
            refusal = CertificateRefusal(tlsSettings, tlsDomain, certificate as X509Certificate2 ?? (certificate is null ? null : new X509Certificate2(certificate)), errors);
            return refusal is null;
        };
        var secure = tlsSettings is { Length: > 0 } || job.RequireTls ? SecureSocketOptions.StartTls : SecureSocketOptions.StartTlsWhenAvailable;
        try
        {
            await client.ConnectAsync(endPoint.Address.ToString(), endPoint.Port, secure, timeout.Token);
        }
        catch (Exception ex) when (refusal is not null && ex is SslHandshakeException or AuthenticationException)
        {
            throw new AuthenticationException($"TLS to {host}: {refusal}", ex);
        }
        var message = MimeMessage.Load(new MemoryStream(job.Mail.ToBytes()));
        var sender = MailboxAddress.Parse(job.MailFrom.Length == 0 ? "<>" : job.MailFrom);
        var reply = await client.SendAsync(FormatOptions.Default, message, sender, job.Recipients.Select(MailboxAddress.Parse), timeout.Token);
        await client.DisconnectAsync(true, CancellationToken.None);
        return reply;
    }

    private string? CertificateRefusal(string? tlsSettings, string? tlsDomain, X509Certificate2? certificate, SslPolicyErrors errors)
    {
        if (certificate is null)
            return "the smart host presented no certificate";
        if (tlsSettings is null or "" || tlsSettings.Equals("EncryptionOnly", StringComparison.OrdinalIgnoreCase))
            return null;
        var trusted = (errors & SslPolicyErrors.RemoteCertificateChainErrors) == 0
            || options.TrustedCertificates.Any(t => t.Thumbprint.Equals(certificate.Thumbprint, StringComparison.OrdinalIgnoreCase));
        if (!trusted)
            return $"certificate validation failed: '{certificate.Subject}' is not issued by a trusted authority";
        if (certificate.NotAfter < DateTime.Now || certificate.NotBefore > DateTime.Now)
            return $"certificate validation failed: '{certificate.Subject}' is not valid now";
        if (tlsSettings.Equals("DomainValidation", StringComparison.OrdinalIgnoreCase))
        {
            var names = Names(certificate);
            if (tlsDomain is null || !ConnectorMatch.TlsDomain(tlsDomain, names))
                return $"the certificate's names ({string.Join(", ", names)}) do not match TlsDomain '{tlsDomain}'";
        }
        return null;
    }

    /// <summary>The subject CN and DNS subject alternative names of a certificate.</summary>
    internal static IReadOnlyList<string> Names(X509Certificate2 certificate)
    {
        var names = new List<string>();
        var cn = certificate.GetNameInfo(X509NameType.SimpleName, false);
        if (!string.IsNullOrEmpty(cn))
            names.Add(cn);
        foreach (var extension in certificate.Extensions.OfType<X509SubjectAlternativeNameExtension>())
            names.AddRange(extension.EnumerateDnsNames());
        return [.. names.Distinct(StringComparer.OrdinalIgnoreCase)];
    }

    private static string Describe(Exception ex) => ex switch
    {
        SocketException s => $"cannot connect: {s.SocketErrorCode}",
        OperationCanceledException => "timed out",
        _ => ex.InnerException is { } inner && ex is not AuthenticationException ? $"{ex.Message} ({inner.Message})" : ex.Message,
    };
}
