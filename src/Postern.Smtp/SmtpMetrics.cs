using System.Diagnostics.Metrics;

namespace Postern.Smtp;

/// <summary>The SMTP server's metrics (meter "Postern.Smtp"): sessions started and ended, by listener, and TLS handshakes that failed.</summary>
public static class SmtpMetrics
{
    public const string MeterName = "Postern.Smtp";

    public static readonly Meter Meter = new(MeterName);

    private static readonly Counter<long> Sessions = Meter.CreateCounter<long>("postern.smtp.sessions",
        description: "SMTP sessions accepted, by listener.");

    private static readonly Counter<long> TlsFailures = Meter.CreateCounter<long>("postern.smtp.tls_handshake_failures",
        description: "STARTTLS handshakes that failed, by listener.");

    /// <summary>The listener's series exist from its start, at zero.</summary>
    internal static void ListenerStarted(string listener)
    {
        Sessions.Add(0, new KeyValuePair<string, object?>("listener", listener));
        TlsFailures.Add(0, new KeyValuePair<string, object?>("listener", listener));
    }

    internal static void SessionStarted(string listener) => Sessions.Add(1, new KeyValuePair<string, object?>("listener", listener));

    internal static void TlsHandshakeFailed(string listener) => TlsFailures.Add(1, new KeyValuePair<string, object?>("listener", listener));
}
