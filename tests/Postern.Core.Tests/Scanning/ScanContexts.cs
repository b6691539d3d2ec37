using MimeKit;
using Postern.Core.Scanning;
using Postern.Core.Spool;
using Postern.Core.Tenants;

namespace Postern.Core.Tests.Scanning;

/// <summary>Messages and scan contexts for engine tests.</summary>
internal static class ScanContexts
{
    public static readonly Tenant Tenant = new()
    {
        Id = Guid.Parse("6f1c2a57-3a0e-4bde-9a53-1f0c2d4e5a60"),
        Name = "Contoso",
        Region = "eu",
        LoopToken = "0123456789abcdef0123456789abcdef",
        CreatedAt = DateTimeOffset.Parse("2026-01-01T00:00:00Z"),
    };

    public static readonly string[] ContosoDomains = ["contoso.com", "contoso.co.uk"];

    public static readonly string[] ContosoVips = ["Jane Doe", "Jürgen Müller", "Björk"];

    /// <summary>A scan context for a message, with its serialised bytes as the raw form.</summary>
    public static ScanContext For(MimeMessage message, string mailFrom = "sender@example.net", string[]? recipients = null,
        IReadOnlyList<string>? tenantDomains = null, IReadOnlyList<string>? vips = null, string client = "203.0.113.5")
    {
        using var buffer = new MemoryStream();
        message.WriteTo(FormatOptions.Default, buffer);
        return For(buffer.ToArray(), message, mailFrom, recipients, tenantDomains, vips, client);
    }

    /// <summary>A scan context for raw bytes, parsed the way the relay parses what it received.</summary>
    public static ScanContext ForRaw(byte[] raw, string mailFrom = "sender@example.net", string[]? recipients = null,
        IReadOnlyList<string>? tenantDomains = null, IReadOnlyList<string>? vips = null)
    {
        var message = MimeMessage.Load(new MemoryStream(raw, writable: false));
        return For(raw, message, mailFrom, recipients, tenantDomains, vips, "203.0.113.5");
    }

    private static ScanContext For(byte[] raw, MimeMessage message, string mailFrom, string[]? recipients,
        IReadOnlyList<string>? tenantDomains, IReadOnlyList<string>? vips, string client)
    {
        var envelope = new Envelope
        {
            QueueId = "SCANTEST" + Guid.NewGuid().ToString("N")[..8].ToUpperInvariant(),
            ReceivedAt = DateTimeOffset.UtcNow,
            TenantId = Tenant.Id,
            MailFrom = mailFrom,
            Recipients = (recipients ?? ["bob@contoso.com"]).Select(r => new EnvelopeRecipient(r, RecipientRoute.Tenant)).ToList(),
            Client = client,
            HeloName = "mail.example.net",
            Subject = message.Subject,
            MessageId = message.MessageId,
        };
        return new ScanContext
        {
            Envelope = envelope,
            Tenant = Tenant,
            Message = message,
            OpenRaw = () => new MemoryStream(raw, writable: false),
            Size = raw.Length,
            TenantDomains = tenantDomains ?? ContosoDomains,
            Vips = vips ?? ContosoVips,
        };
    }

    /// <summary>A plain message from <paramref name="from"/> with a text body and the given attachments (base64).</summary>
    public static MimeMessage Message(string text = "Hello Bob,\r\nplease see the attachment.\r\n", string? html = null,
        string from = "Alice Sender <alice@example.net>", string subject = "Test message", params (string Name, byte[] Data)[] attachments)
    {
        var message = new MimeMessage();
        message.From.Add(MailboxAddress.Parse(from));
        message.To.Add(MailboxAddress.Parse("Bob <bob@contoso.com>"));
        message.Subject = subject;
        message.MessageId = $"{Guid.NewGuid():N}@example.net";
        message.Date = DateTimeOffset.Parse("2026-11-22T10:00:00Z");
        var body = new BodyBuilder { TextBody = text, HtmlBody = html };
        foreach (var (name, data) in attachments)
            body.Attachments.Add(name, data, ContentType.Parse("application/octet-stream"));
        message.Body = body.ToMessageBody();
        return message;
    }
}
