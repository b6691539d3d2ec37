using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using System.Text;

namespace Postern.Smtp.Internal;

/// <summary>Per-listener state computed once: TLS settings and the fixed replies.</summary>
internal sealed class ListenerContext
{
    public ListenerContext(SmtpListenerOptions options, SmtpLimits limits)
    {
        Options = options;
        Greeting = Encoding.ASCII.GetBytes($"220 {options.HostName} ESMTP Postern\r\n");
        HeloReply = new SmtpReply(250, "", options.HostName);
        EhloWithStartTls = ReplyFormatter.BuildEhlo(options.HostName, limits.MaxMessageSize, offerStartTls: true);
        EhloWithoutStartTls = ReplyFormatter.BuildEhlo(options.HostName, limits.MaxMessageSize, offerStartTls: false);
        if (options.Certificate is { } certificate)
        {
            // Built once: chain building per handshake is the expensive part of a TLS accept.
            var context = SslStreamCertificateContext.Create(certificate, additionalCertificates: null, offline: true);
            TlsOptions = new SslServerAuthenticationOptions
            {
                ServerCertificateContext = context,
                ClientCertificateRequired = options.RequestClientCertificate,
                EnabledSslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13,
                CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
                // Exchange Online presents a certificate we record, not one we authenticate here.
                RemoteCertificateValidationCallback = static (_, _, _, _) => true,
                AllowRenegotiation = false,
            };
        }
    }

    public SmtpListenerOptions Options { get; }

    /// <summary>Whether <paramref name="address"/> (IPv4-mapped already made IPv4) is in one of the allowed networks, or none are set.</summary>
    public bool Allows(IPAddress address)
    {
        var networks = Options.AllowedClientNetworks;
        if (networks.Count == 0)
        {
            return true;
        }
        foreach (var network in networks)
        {
            if (network.Contains(address))
            {
                return true;
            }
        }
        return false;
    }

    public SslServerAuthenticationOptions? TlsOptions { get; }

    public byte[] Greeting { get; }

    public SmtpReply HeloReply { get; }

    public byte[] EhloWithStartTls { get; }

    public byte[] EhloWithoutStartTls { get; }

    public Socket? Socket { get; set; }

    public Task? AcceptLoop { get; set; }
}
