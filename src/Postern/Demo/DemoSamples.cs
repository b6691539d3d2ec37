using System.Text;
using MimeKit;

namespace Postern.Demo;

/// <summary>One sample message of the demo: who sends it how, and where it should end.</summary>
internal sealed record DemoSample(string Label, string Subject, string From, string To, bool FromInternet, MimeMessage Message)
{
    /// <summary>The engine without which this sample is not recognised (null: none needed).</summary>
    public string? NeedsEngine { get; init; }

    /// <summary>The Maildir it ends in when delivered: a mailbox address, or "Internet".</summary>
    public required string Destination { get; init; }
}

/// <summary>The demo's messages: clean, spam (GTUBE), a virus test file (EICAR), an outbound one, one to the second tenant.</summary>
internal static class DemoSamples
{
    public static IReadOnlyList<DemoSample> Create(string run)
    {
        const string alice = "alice@contoso.com";
        return
        [
            new("clean message", $"[demo {run}] Lunch on Friday?", "sam@example.org", alice, FromInternet: true,
                Text("sam@example.org", alice, $"[demo {run}] Lunch on Friday?", "Are you free for lunch on Friday?\r\n\r\nSam\r\n")) { Destination = alice },
            new("spam (GTUBE)", $"[demo {run}] You have won", "winner@example.org", alice, FromInternet: true,
                Text("winner@example.org", alice, $"[demo {run}] You have won", "This is the GTUBE, the standard spam test line:\r\n\r\n" + Gtube() + "\r\n"))
            { Destination = alice, NeedsEngine = "rspamd" },
            new("virus (EICAR)", $"[demo {run}] Invoice attached", "billing@example.org", alice, FromInternet: true,
                WithAttachment("billing@example.org", alice, $"[demo {run}] Invoice attached", "invoice.com", Eicar()))
            { Destination = alice, NeedsEngine = "clamav" },
            new("outbound", $"[demo {run}] Our proposal", alice, "partner@example.net", FromInternet: false,
                Text(alice, "partner@example.net", $"[demo {run}] Our proposal", "Please find our proposal below.\r\n\r\nAlice\r\n")) { Destination = "Internet" },
            new("to the second tenant", $"[demo {run}] Hello Fabrikam", alice, "bob@fabrikam.com", FromInternet: false,
                Text(alice, "bob@fabrikam.com", $"[demo {run}] Hello Fabrikam", "Hello Bob, this went out through Postern for Contoso and in through Postern for Fabrikam.\r\n"))
            { Destination = "bob@fabrikam.com" },
        ];
    }

    private static MimeMessage Text(string from, string to, string subject, string body)
    {
        var message = new MimeMessage { Subject = subject, Date = DateTimeOffset.UtcNow };
        message.From.Add(MailboxAddress.Parse(from));
        message.To.Add(MailboxAddress.Parse(to));
        message.MessageId = MimeKit.Utils.MimeUtils.GenerateMessageId(from[(from.IndexOf('@') + 1)..]);
        message.Body = new TextPart("plain") { Text = body };
        return message;
    }

    private static MimeMessage WithAttachment(string from, string to, string subject, string name, byte[] content)
    {
        var message = Text(from, to, subject, "");
        var body = new BodyBuilder { TextBody = "Your invoice is attached.\r\n" };
        body.Attachments.Add(name, content, new ContentType("application", "octet-stream"));
        message.Body = body.ToMessageBody();
        return message;
    }

    /// <summary>The GTUBE line, put together here so the binary itself does not read as spam.</summary>
    private static string Gtube() => string.Concat("XJS*C4JDBQADN1.NSBN3*2IDNEN*", "GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X");

    /// <summary>The EICAR test file, put together at run time so postern itself is never flagged by a virus scanner.</summary>
    private static byte[] Eicar() => Encoding.ASCII.GetBytes(string.Concat(@"X5O!P%@AP[4\PZX54(P^)7CC)7}$", "EICAR-STANDARD-", "ANTIVIRUS-TEST-FILE!$H+H*"));
}
