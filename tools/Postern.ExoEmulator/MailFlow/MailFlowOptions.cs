using System.Net;
using System.Security.Cryptography.X509Certificates;

namespace Postern.ExoEmulator.MailFlow;

/// <summary>How the emulator's mail side is set up: where it listens, where mail lands, how it reaches smart hosts.</summary>
public sealed class MailFlowOptions
{
    /// <summary>
    /// The one front door every simulated tenant shares, as Exchange Online's *.mail.protection.outlook.com hosts do:
    /// which tenant a message belongs to is decided by attribution, never by the port it came to.
    /// </summary>
    public required IPEndPoint FrontDoor { get; init; }

    /// <summary>
    /// Optional: "every other MX on the Internet", a listener that takes any mail and puts it in the Internet Maildir
    /// (where a relay's direct delivery to outside recipients lands in tests).
    /// </summary>
    public IPEndPoint? Internet { get; init; }

    /// <summary>Root of the Maildirs: one per mailbox (its address), and "Internet" for mail that left the service.</summary>
    public required string MaildirRoot { get; init; }

    /// <summary>
    /// When a connector's smart host answers 4xx or cannot be reached, Exchange Online retries "for 24 hours", then
    /// returns the message with an NDR (Learn: "fix email delivery issues for error code 4.4.7"). Tests shorten both.
    /// </summary>
    public IReadOnlyList<TimeSpan> RetryDelays { get; init; } = DefaultRetryDelays;

    public static readonly IReadOnlyList<TimeSpan> DefaultRetryDelays =
        [TimeSpan.FromMinutes(1), TimeSpan.FromMinutes(5), TimeSpan.FromMinutes(15), TimeSpan.FromMinutes(30), TimeSpan.FromHours(1)];

    public TimeSpan MaxAge { get; init; } = TimeSpan.FromHours(24);

    /// <summary>Smart host name → where it is here (never a real DNS lookup: the emulator stays on loopback).</summary>
    public Dictionary<string, IPEndPoint> SmartHostAddresses { get; init; } = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>
    /// Certificates Exchange Online is to trust as if a public CA had issued them (the smart hosts' self-signed ones
    /// in tests): CertificateValidation and DomainValidation accept a chain only to a public root, or one of these.
    /// </summary>
    public List<X509Certificate2> TrustedCertificates { get; init; } = [];

    /// <summary>Address the emulated service connects from (a distinct 127.x keeps it apart from the test's clients).</summary>
    public IPAddress? EgressAddress { get; init; }

    public long MaxMessageSize { get; init; } = 150L * 1024 * 1024;

    public int MaxRecipients { get; init; } = 1000;

    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(10);
}
