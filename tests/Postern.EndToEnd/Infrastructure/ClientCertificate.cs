using System.Text.RegularExpressions;

namespace Postern.EndToEnd.Infrastructure;

/// <summary>How Postfix (smtpd_tls_ask_ccert + smtpd_tls_received_header) records a client certificate.</summary>
public static class ClientCertificate
{
    /// <summary>Matches the Received header part `(Client CN "NAME", Issuer "…" (not verified))`; any CN when <paramref name="commonName"/> is null.</summary>
    public static Regex ReceivedPattern(string? commonName = null)
        => new($@"\(Client CN ""{(commonName is null ? "[^\"]+" : Regex.Escape(commonName))}"", Issuer ""[^""]*""");
}
