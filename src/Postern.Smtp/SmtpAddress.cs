namespace Postern.Smtp;

/// <summary>
/// A mailbox from MAIL FROM or RCPT TO, as the client wrote it (without angle brackets),
/// split at the last '@'. The null reverse-path &lt;&gt; has an empty <see cref="Address"/>.
/// The SMTP layer only checks syntax; whether a domain may be relayed to is the handler's call.
/// </summary>
public sealed record SmtpAddress(string LocalPart, string Domain)
{
    public static readonly SmtpAddress Null = new("", "");

    public bool IsNull => LocalPart.Length == 0 && Domain.Length == 0;

    public string Address => Domain.Length == 0 ? LocalPart : $"{LocalPart}@{Domain}";

    public override string ToString() => Address;
}
