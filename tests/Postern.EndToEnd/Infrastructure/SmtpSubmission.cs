using System.Text.RegularExpressions;

namespace Postern.EndToEnd.Infrastructure;

/// <summary>What the server answered to one submitted message.</summary>
public sealed partial record SubmissionResult(SmtpResponse Reply, string Stage)
{
    /// <summary>The id from "250 ... queued as ID".</summary>
    public string? QueueId => Reply.Code == 250 && QueuedAs().Match(Reply.Lines.LastOrDefault() ?? "") is { Success: true } m ? m.Groups[1].Value : null;

    public override string ToString() => $"{Stage}: {Reply}";

    [GeneratedRegex(@"queued as (\S+)")]
    private static partial Regex QueuedAs();
}

/// <summary>
/// Sends a message exactly as given (bytes, not text): line ends made CRLF the way any SMTP client
/// does, dots stuffed, BODY=8BITMIME. For corpora with 8-bit and malformed content, which a text
/// client would re-encode.
/// </summary>
public static class SmtpSubmission
{
    public static async Task<SubmissionResult> SendAsync(int port, string from, IReadOnlyList<string> recipients, byte[] message,
        bool startTls = false, TimeSpan? timeout = null)
    {
        await using var client = await RawSmtpClient.ConnectAsync(port, timeout ?? TimeSpan.FromSeconds(60));
        if (client.Greeting.Code != 220)
            return new(client.Greeting, "greeting");
        var ehlo = await client.HelloAsync(startTls);
        if (ehlo.Code != 250)
            return new(ehlo, "EHLO");
        var mail = await client.CommandAsync($"MAIL FROM:<{from}> BODY=8BITMIME");
        if (mail.Code != 250)
            return new(mail, "MAIL");
        foreach (var rcpt in recipients)
        {
            var reply = await client.CommandAsync($"RCPT TO:<{rcpt}>");
            if (reply.Code != 250)
                return new(reply, "RCPT");
        }
        var data = await client.CommandAsync("DATA");
        if (data.Code != 354)
            return new(data, "DATA");
        await client.SendRawAsync(ToWire(message));
        var final = await client.ReadResponseAsync();
        try
        {
            await client.CommandAsync("QUIT");
        }
        catch (Exception e) when (e is IOException or TimeoutException or InvalidDataException)
        {
            // The answer to DATA is what counts; a server that hangs up after it is fine.
        }
        return new(final, "end of DATA");
    }

    /// <summary>CRLF line ends (bare LF becomes CRLF; bare CR is left alone), dot-stuffed, with the terminating ".".</summary>
    public static byte[] ToWire(byte[] message)
    {
        var output = new List<byte>(message.Length + message.Length / 40 + 8);
        var lineStart = true;
        for (var i = 0; i < message.Length; i++)
        {
            var b = message[i];
            if (lineStart && b == (byte)'.')
                output.Add((byte)'.');
            lineStart = false;
            if (b == (byte)'\n')
            {
                if (output.Count == 0 || output[^1] != (byte)'\r')
                    output.Add((byte)'\r');
                output.Add(b);
                lineStart = true;
                continue;
            }
            output.Add(b);
        }
        if (!lineStart)
        {
            output.Add((byte)'\r');
            output.Add((byte)'\n');
        }
        output.AddRange(".\r\n"u8.ToArray());
        return output.ToArray();
    }
}
