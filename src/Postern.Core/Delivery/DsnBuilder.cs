using System.Text;
using MimeKit;
using Postern.Core.Spool;

namespace Postern.Core.Delivery;

/// <summary>Builds delivery status notifications (RFC 3464) for recipients Postern could not deliver to.</summary>
public static class DsnBuilder
{
    public static byte[] Build(string reportingHost, Envelope original, IReadOnlyList<RecipientResult> failed, Stream originalMessage)
    {
        var headers = new HeaderList();
        try
        {
            headers = HeaderList.Load(originalMessage);
        }
        catch (FormatException)
        {
            // A message without parseable headers still gets a notification, just without them.
        }

        var message = new MimeMessage();
        message.From.Add(new MailboxAddress("Mail Delivery System", $"MAILER-DAEMON@{reportingHost}"));
        message.To.Add(MailboxAddress.Parse(original.MailFrom));
        message.Subject = "Undelivered Mail Returned to Sender";
        message.Headers.Add("Auto-Submitted", "auto-replied");

        var text = new StringBuilder();
        text.AppendLine($"This is the mail system at host {reportingHost}.");
        text.AppendLine();
        text.AppendLine("Your message could not be delivered to one or more recipients.");
        text.AppendLine("The mail system said:");
        text.AppendLine();
        foreach (var result in failed)
            text.AppendLine($"<{result.Recipient}>: {result.Reply}");

        var status = new MessageDeliveryStatus();
        var perMessage = new HeaderList
        {
            { "Reporting-MTA", $"dns; {reportingHost}" },
            { "X-Postern-Queue-ID", original.QueueId },
            { "Arrival-Date", MimeKit.Utils.DateUtils.FormatDate(original.ReceivedAt) },
        };
        status.StatusGroups.Add(perMessage);
        foreach (var result in failed)
        {
            status.StatusGroups.Add(new HeaderList
            {
                { "Final-Recipient", $"rfc822; {result.Recipient}" },
                { "Action", "failed" },
                { "Status", StatusCode(result.Reply) },
                { "Diagnostic-Code", $"smtp; {result.Reply}" },
            });
        }

        var returned = new MimePart("text", "rfc822-headers") { ContentTransferEncoding = ContentEncoding.EightBit };
        using (var content = new MemoryStream())
        {
            headers.WriteTo(content);
            content.Position = 0;
            returned.Content = new MimeContent(new MemoryStream(content.ToArray()));
        }

        var report = new MultipartReport("delivery-status")
        {
            new TextPart("plain") { Text = text.ToString() },
            status,
            returned,
        };
        message.Body = report;
        message.MessageId = MimeKit.Utils.MimeUtils.GenerateMessageId(reportingHost);

        using var output = new MemoryStream();
        var format = FormatOptions.Default.Clone();
        format.NewLineFormat = NewLineFormat.Dos;
        message.WriteTo(format, output);
        return output.ToArray();
    }

    /// <summary>The enhanced status code in a reply ("550 5.1.1 …" → 5.1.1), or 5.0.0.</summary>
    private static string StatusCode(string reply)
    {
        foreach (var word in reply.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            var parts = word.Split('.');
            if (parts.Length == 3 && parts[0] is "4" or "5" && parts.All(p => p.All(char.IsDigit) && p.Length > 0))
                return "5" + word[1..];
        }
        return "5.0.0";
    }
}
