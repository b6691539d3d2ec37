using System.Text;
using Postern.Smtp.Tests.Infrastructure;

namespace Postern.Smtp.Tests;

/// <summary>Random, truncated and oversize command lines: every one gets a well-formed reply, and nothing breaks.</summary>
public sealed class MalformedInputTests
{
    private static readonly string[] Templates =
    [
        "EHLO client.test", "HELO client.test", "MAIL FROM:<a@example.com>", "MAIL FROM:<> SIZE=100 BODY=8BITMIME SMTPUTF8",
        "RCPT TO:<b@example.org>", "RCPT TO:<postmaster>", "DATA", "RSET", "NOOP", "HELP", "VRFY x", "EXPN y", "STARTTLS",
        "MAIL FROM:<\"quoted \\\" local\"@[IPv6:::1]>", "RCPT TO:<@a,@b:c@d>", "MAIL FROM:<a@[1.2.3.4]> FOO=BAR",
    ];

    // BDAT is left out of the random verbs: a well-formed BDAT legitimately swallows the following octets as content,
    // which would make "one reply per line" untrue. QUIT would end the session. Both are covered elsewhere.
    private static readonly string[] Verbs = ["EHLO", "HELO", "MAIL", "RCPT", "DATA", "RSET", "NOOP", "HELP", "VRFY", "EXPN", "STARTTLS", "XYZZY", "MAIL FROM:", "RCPT TO:", "AUTH", "ETRN"];

    private static byte[] RandomLine(Random random)
    {
        var bytes = new List<byte>();
        switch (random.Next(6))
        {
            case 0:
                // A valid command cut short or mangled.
                var template = Templates[random.Next(Templates.Length)];
                bytes.AddRange(Encoding.UTF8.GetBytes(template[..random.Next(template.Length + 1)]));
                break;
            case 1:
                // Random printable garbage after a verb.
                bytes.AddRange(Encoding.ASCII.GetBytes(Verbs[random.Next(Verbs.Length)]));
                for (var i = random.Next(40); i > 0; i--)
                {
                    bytes.Add((byte)random.Next(0x20, 0x7F));
                }
                break;
            case 2:
                // Arbitrary octets (no LF: one line must stay one line).
                for (var i = random.Next(80); i > 0; i--)
                {
                    var b = (byte)random.Next(256);
                    bytes.Add(b == (byte)'\n' ? (byte)0 : b);
                }
                break;
            case 3:
                // A template with one octet flipped.
                var t = Encoding.UTF8.GetBytes(Templates[random.Next(Templates.Length)]);
                t[random.Next(t.Length)] = (byte)random.Next(1, 256);
                bytes.AddRange(t.Select(b => b == (byte)'\n' ? (byte)' ' : b));
                break;
            case 4:
                // Addresses with random punctuation.
                bytes.AddRange(Encoding.UTF8.GetBytes((random.Next(2) == 0 ? "MAIL FROM:" : "RCPT TO:") + "<"));
                const string alphabet = "abc@.[]:\"\\<> ,=-é用";
                for (var i = random.Next(30); i > 0; i--)
                {
                    bytes.AddRange(Encoding.UTF8.GetBytes(alphabet[random.Next(alphabet.Length)].ToString()));
                }
                if (random.Next(2) == 0)
                {
                    bytes.Add((byte)'>');
                }
                break;
            default:
                // Oversize.
                bytes.AddRange(Encoding.ASCII.GetBytes("NOOP "));
                bytes.AddRange(Enumerable.Repeat((byte)'z', random.Next(500, 3000)));
                break;
        }
        bytes.AddRange(random.Next(10) == 0 ? "\n"u8.ToArray() : "\r\n"u8.ToArray());
        return bytes.ToArray();
    }

    private static void AssertWellFormed(TestReply reply, string context)
    {
        foreach (var line in reply.Lines)
        {
            // EHLO/HELO answers and 354 carry no enhanced code (RFC 2034 §3); everything else must.
            var ok = reply.Code == 250 && reply.Lines[0].StartsWith("250", StringComparison.Ordinal) && !SmtpTestClient.EnhancedReplyLine().IsMatch(line)
                ? line.Length >= 4 && (line[3] == ' ' || line[3] == '-') && line.StartsWith("250", StringComparison.Ordinal)
                : reply.Code == 354 || (SmtpTestClient.EnhancedReplyLine().IsMatch(line) && line[0] == line[4]);
            Assert.True(ok, $"Malformed reply '{line}' to {context}");
        }
    }

    [Fact]
    public async Task Answers_every_random_or_truncated_line_with_a_well_formed_reply()
    {
        var limits = new SmtpLimits { MaxErrors = 1_000_000, MaxCommandsWithoutProgress = 1_000_000 };
        var handler = new RecordingHandler();
        // Random RCPTs must never open DATA: refuse every recipient.
        handler.OnRecipient = _ => new SmtpReply(550, "5.1.1", "No such user");
        await using var server = await TestServer.StartAsync(limits, handler, TestServer.Listener(withCertificate: false));
        var client = await server.ConnectAsync();
        var random = new Random(20240611);
        const int total = 1500;
        const int batch = 50;

        for (var sent = 0; sent < total; sent += batch)
        {
            var lines = Enumerable.Range(0, batch).Select(_ => RandomLine(random)).ToArray();
            await client.SendAsync(lines.SelectMany(l => l).ToArray());
            for (var i = 0; i < batch; i++)
            {
                var reply = await client.ReadReplyAsync();
                var shown = Encoding.UTF8.GetString(lines[i][..Math.Min(lines[i].Length, 80)]);
                AssertWellFormed(reply, $"line {sent + i}: '{shown}'");
                Assert.NotEqual(354, reply.Code);
                Assert.NotEqual(421, reply.Code);
            }
        }

        // The same session still works normally, and so does a fresh one.
        handler.OnRecipient = null;
        Assert.Equal("250 2.0.0", (await client.CommandAsync("RSET")).Status);
        await client.CommandAsync("EHLO client.test");
        Assert.Equal("250 2.0.0", (await client.SendMessageAsync("s@example.com", ["r@example.org"], "after the storm\r\n")).Status);
        var fresh = await server.ConnectEhloAsync();
        Assert.Equal("250 2.0.0", (await fresh.SendMessageAsync("s@example.com", ["r@example.org"], "fresh\r\n")).Status);
    }

    [Fact]
    public async Task Survives_oversize_binary_input_and_a_truncated_last_line()
    {
        await using var server = await TestServer.StartAsync(new SmtpLimits { MaxErrors = 1000 });
        var client = await server.ConnectEhloAsync();
        var random = new Random(7);
        var blob = new byte[256 * 1024];
        random.NextBytes(blob);
        for (var i = 0; i < blob.Length; i++)
        {
            if (blob[i] == (byte)'\n')
            {
                blob[i] = 0;
            }
        }

        await client.SendAsync(blob);
        await client.SendAsync("\r\nNOOP\r\n");

        AssertWellFormed(await client.ReadReplyAsync(), "256 KiB line");
        Assert.Equal("250 2.0.0", (await client.ReadReplyAsync()).Status);

        await client.SendAsync("MAIL FROM:<truncated@exa");
        await client.DisposeAsync();
        await Poll.UntilAsync(() => server.Server.ActiveSessions == 0, "session to end");
        var next = await server.ConnectEhloAsync();
        Assert.Equal("250 2.0.0", (await next.SendMessageAsync("s@example.com", ["r@example.org"], "ok\r\n")).Status);
    }
}
