using System.Text;
using Postern.EndToEnd.Infrastructure;
using Xunit.Abstractions;

namespace Postern.EndToEnd;

/// <summary>
/// What comes in by SMTP, as a mail administrator checks it: BDAT gets the checks DATA gets, what Postern
/// stored is what the next hop receives (CHUNKING or not), and a client without a valid key cannot make the
/// data directory grow.
/// </summary>
public sealed class SmtpInputTests(ITestOutputHelper output) : EndToEndTest(output)
{
    private const string BareLineEndReply = "550 5.6.0 Message refused: bare CR or LF line endings (only CRLF is allowed)";

    [Theory]
    [InlineData("\n")]
    [InlineData("\r")]
    public async Task A_message_with_a_bare_cr_or_lf_is_refused_by_bdat_as_by_data_and_nothing_is_spooled(string bare)
    {
        var relay = await StartRelayAsync();
        await using var client = await RawSmtpClient.ConnectAsync(relay.PlainPort);
        await client.HelloAsync();
        string Message(string how) =>
            $"{relay.Contoso.KeyHeader}\r\nFrom: <{RelayHarness.ExternalSender}>\r\nTo: <alice@contoso.test>\r\nSubject: bare-{how}\r\n" +
            $"Message-ID: <bare-{how}@smtpinput.test>\r\n\r\nline one{bare}MAIL FROM:<smuggled@external.test>\r\nline two\r\n";

        // DATA, one BDAT LAST, and BDAT chunks with the bare line end at the very end of the first chunk.
        await StartTransactionAsync(client);
        Assert.Equal(354, (await client.CommandAsync("DATA")).Code);
        await client.SendRawAsync(Encoding.ASCII.GetBytes(Message("data") + ".\r\n"));
        var byData = await client.ReadResponseAsync();

        await StartTransactionAsync(client);
        var whole = Message("bdat");
        await client.SendRawAsync(Encoding.ASCII.GetBytes($"BDAT {whole.Length} LAST\r\n{whole}"));
        var byBdat = await client.ReadResponseAsync();

        await StartTransactionAsync(client);
        var split = Message("chunks");
        var cut = split.IndexOf("line one", StringComparison.Ordinal) + "line one".Length + 1;
        await client.SendRawAsync(Encoding.ASCII.GetBytes($"BDAT {cut}\r\n{split[..cut]}BDAT {split.Length - cut} LAST\r\n{split[cut..]}"));
        var firstChunk = await client.ReadResponseAsync();
        var lastChunk = await client.ReadResponseAsync();

        Assert.Equal(BareLineEndReply, byData.ToString());
        Assert.Equal(BareLineEndReply, byBdat.ToString());
        // A bare LF is refused in the chunk that holds it; a CR ending a chunk waits for the next one's first octet.
        Assert.Equal(bare == "\n" ? BareLineEndReply : "250 2.0.0 " + cut + " octets received", firstChunk.ToString());
        Assert.Equal(BareLineEndReply, lastChunk.ToString());

        // A clean message sent by BDAT right after, with its CRLFs split between chunks, is relayed: the session is in step.
        await StartTransactionAsync(client);
        var clean = $"{relay.Contoso.KeyHeader}\r\nFrom: <{RelayHarness.ExternalSender}>\r\nSubject: clean\r\nMessage-ID: <clean@smtpinput.test>\r\n\r\nbody\r\n";
        var middle = clean.IndexOf("\r\n\r\n", StringComparison.Ordinal) + 1;
        await client.SendRawAsync(Encoding.ASCII.GetBytes($"BDAT {middle}\r\n{clean[..middle]}BDAT {clean.Length - middle} LAST\r\n{clean[middle..]}"));
        Assert.Equal(250, (await client.ReadResponseAsync()).Code);
        var accepted = await client.ReadResponseAsync();
        Assert.True(accepted.Code == 250, accepted.ToString());
        var delivered = await relay.Sink.WaitForMessagesAsync(1, TimeSpan.FromSeconds(30), Diagnostics);

        // Only the clean message reached the next hop; none of the refused ones is in the spool, and the trace says why
        // each was refused, by DATA and by BDAT alike.
        Assert.Equal("clean", Assert.Single(delivered).Mail.Header("Subject"));
        foreach (var how in new[] { "data", "bdat", "chunks" })
            Assert.False(SpoolHolds($"bare-{how}@smtpinput.test"), $"the refused message 'bare-{how}' is in the spool");
        IReadOnlyList<TraceEntry> trace = [];
        await Poll.UntilAsync(async () => (trace = await TraceQuery.ListAsync(Postern)).Count(t => t.Subject?.StartsWith("bare-", StringComparison.Ordinal) == true) >= 3,
            TimeSpan.FromSeconds(10), "the three refusals in the trace", () => string.Join("\n", trace) + "\n" + Diagnostics());
        foreach (var how in new[] { "data", "bdat", "chunks" })
        {
            var refused = Assert.Single(trace, t => t.Subject == $"bare-{how}");
            Assert.Equal("refused", refused.State);
            Assert.Contains("550 5.6.0", refused.Reason);
            Assert.Contains("bare CR or LF", refused.Reason);
        }
        Assert.Single(trace, t => t.Subject == "clean");
        await Poll.UntilAsync(() => Postern.ReadLog().Split('\n').Count(l => l.Contains("Message refused: bare CR or LF", StringComparison.Ordinal)) >= 3,
            TimeSpan.FromSeconds(10), "the three refusals in Postern's log", Diagnostics);
    }

    /// <summary>Messages whose bytes a careless relay changes: no final CRLF, 998-octet lines, lines that start with dots.</summary>
    private static readonly string[] Bodies =
    [
        "line\r\n.\r\n..two dots\r\n.leading\r\n" + new string('x', 998) + "\r\nno final line end",
        "." + new string('.', 997) + "\r\n.\r\n" + new string('y', 998) + "\r\n\r\n\r\n",
        "single line without a line end",
        "\r\n.\r\n..\r\n...\r\n. \r\n",
    ];

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task What_postern_stored_reaches_a_postfix_next_hop_byte_for_byte(bool chunking)
    {
        var mtaCertificate = TestCertificate.Create(Directory.Sub("certs"), "tenantmta", "tenant-mta.test");
        // No STARTTLS, so that a proxy in front of Postfix can keep the very bytes Postern writes.
        string[] settings = ["smtpd_tls_security_level = none", .. chunking ? Array.Empty<string>() : ["smtpd_discard_ehlo_keywords = chunking"]];
        var tenantMta = Own(await PostfixInstance.StartTenantMtaAsync(Directory, ["contoso.test"], mtaCertificate, extraSettings: settings));
        AddDiagnostics(() => tenantMta.ReadLogTail());
        var wire = Own(new RecordingProxy(tenantMta.Port));
        // With a DNS server Postern checks SPF/DKIM/DMARC and stores its own (folded) Authentication-Results field.
        var dns = Own(await DnsServer.StartAsync(Directory, "$TTL 300\nexternal.test. IN TXT \"v=spf1 -all\"\n"));
        var config = new PosternConfig
        {
            Listeners = [new PosternListener("plain", FreePort.Next(), RequireTls: false)],
            DeliveryRequireTls = false,
            DnsServers = [dns.EndPoint],
        };
        var contoso = await Postern.CreateTenantAsync("contoso", "contoso.test", $"127.0.0.1:{wire.Port}");
        await Postern.StartServeAsync(config);

        // BDAT in, so that a message can end without a line end; a 998-octet header line too.
        await using (var client = await RawSmtpClient.ConnectAsync(config.First.Port))
        {
            await client.HelloAsync();
            for (var i = 0; i < Bodies.Length; i++)
            {
                var message = $"{contoso.KeyHeader}\r\nFrom: <sender@external.test>\r\nTo: <alice@contoso.test>\r\nDate: Mon, 7 Dec 2026 12:00:00 +0000\r\n" +
                    $"Subject: byte-exact {i}\r\nMessage-ID: <exact-{i}@smtpinput.test>\r\nX-Long: {new string('h', 990)}\r\n\r\n" + Bodies[i];
                await StartTransactionAsync(client);
                await client.SendRawAsync(Encoding.ASCII.GetBytes($"BDAT {message.Length} LAST\r\n{message}"));
                var reply = await client.ReadResponseAsync();
                Assert.True(reply.Code == 250, $"message {i}: {reply}");
            }
        }
        var delivered = await WaitForMaildirAsync(tenantMta, Bodies.Length);
        // Every octet Postern wrote, read as Postfix reads it: a BDAT chunk is as long as its size says, or what follows is no command.
        var sent = wire.ReceivedByConnection.SelectMany(SentMessages).ToList();
        Assert.Equal(Bodies.Length, sent.Count);
        Assert.All(sent, m => Assert.Equal(chunking, m.ByBdat));

        for (var i = 0; i < Bodies.Length; i++)
        {
            var stored = StoredMessage($"exact-{i}@smtpinput.test", Bodies[i]);
            Assert.Contains("Authentication-Results:", Encoding.Latin1.GetString(stored), StringComparison.Ordinal);
            Assert.DoesNotContain("\n", Encoding.Latin1.GetString(stored).Replace("\r\n", ""), StringComparison.Ordinal);
            AssertSentAsStored(stored, sent.Single(m => Encoding.Latin1.GetString(m.Content).Contains($"<exact-{i}@smtpinput.test>", StringComparison.Ordinal)).Content);
            // And Postfix read it so. Its Maildir has LF line ends: with CRLF only in what was stored, turning them back is exact.
            var received = delivered.Single(m => Encoding.Latin1.GetString(m).Contains($"<exact-{i}@smtpinput.test>", StringComparison.Ordinal));
            var asReceived = Encoding.Latin1.GetBytes(Encoding.Latin1.GetString(received).Replace("\n", "\r\n"));
            var expected = stored[^1] == '\n' ? stored : [.. stored, .. "\r\n"u8]; // SMTP data ends with a line end
            Assert.Equal(Encoding.Latin1.GetString(expected), Encoding.Latin1.GetString(WithoutHopFields(asReceived)));
        }

        // Postfix counts the commands of each session when it ends: BDAT was used exactly when it was offered.
        await Postern.StopAsync();
        await Poll.UntilAsync(() => tenantMta.ReadLog().Contains(" disconnect from ", StringComparison.Ordinal), TimeSpan.FromSeconds(20),
            "Postern's session to end at the tenant MTA", Diagnostics);
        var sessions = string.Join("\n", tenantMta.ReadLog().Split('\n').Where(l => l.Contains(" disconnect from ", StringComparison.Ordinal)));
        Assert.True(chunking == sessions.Contains(" bdat=", StringComparison.Ordinal) && !chunking == sessions.Contains(" data=", StringComparison.Ordinal),
            $"CHUNKING {(chunking ? "offered" : "not offered")}, and Postfix logged:\n{sessions}");
    }

    [Fact]
    public async Task An_unauthenticated_100_mb_message_and_an_endless_header_section_are_refused_and_the_data_directory_does_not_grow()
    {
        var relay = await StartRelayAsync();
        await using var client = await RawSmtpClient.ConnectAsync(relay.PlainPort);
        await client.HelloAsync();
        var before = DataDirectoryBytes();
        var samples = new List<long>();
        var line = Encoding.ASCII.GetBytes(new string('b', 998) + "\r\n");
        var megabyte = Enumerable.Range(0, 1024 * 1024 / line.Length).SelectMany(_ => line).ToArray();

        // 100 MB with no relay key: refused once the header section is in; sampled with du while the client still sends.
        await StartTransactionAsync(client);
        Assert.Equal(354, (await client.CommandAsync("DATA")).Code);
        await client.SendRawAsync(Encoding.ASCII.GetBytes("From: <sender@external.test>\r\nTo: <alice@contoso.test>\r\nSubject: no key\r\n\r\n"));
        SmtpResponse? wellBehaved = null;
        for (var mb = 1; mb <= 100; mb++)
        {
            await client.SendRawAsync(megabyte);
            if (mb % 10 == 0)
                samples.Add(DataDirectoryBytes());
            // Half-way through, another tenant's message (as Exchange Online sends it) must not wait for the stream.
            if (mb == 50)
                wellBehaved = await SendAndAwaitDeliveryAsync(relay);
        }
        await client.SendRawAsync(".\r\n"u8.ToArray());
        var noKey = await client.ReadResponseAsync();

        // A header section that never ends (20 MB of header lines): refused, not stored, then the end of DATA.
        await StartTransactionAsync(client);
        Assert.Equal(354, (await client.CommandAsync("DATA")).Code);
        var header = Encoding.ASCII.GetBytes(string.Concat(Enumerable.Repeat("X-Filler: " + new string('h', 500) + "\r\n", 2000)));
        for (var i = 0; i < 20; i++)
        {
            await client.SendRawAsync(header);
            samples.Add(DataDirectoryBytes());
        }
        await client.SendRawAsync(".\r\n"u8.ToArray());
        var endless = await client.ReadResponseAsync();

        Assert.Equal("550 5.7.1 Relaying denied: no X-Postern-Key header (is the Exchange Online rule setting it?)", noKey.ToString());
        Assert.Equal("554 5.6.0 Header section too large", endless.ToString());
        Output.WriteLine($"data directory before: {before} bytes; during the transfers (du -sb): {string.Join(", ", samples)}");
        // Growth stays within what the database and logs write meanwhile, far below either message.
        Assert.All(samples, s => Assert.InRange(s - before, long.MinValue, 2 * 1024 * 1024));
        Assert.Equal(250, wellBehaved!.Code);
        Assert.Equal("fabrikam while a keyless client streams", Assert.Single(relay.Sink.Messages()).Mail.Header("Subject"));
        Assert.Equal("250", (await client.CommandAsync("NOOP")).Code.ToString());
        var refused = await TraceQuery.ListAsync(Postern);
        var entry = Assert.Single(refused, t => t.Subject == "no key");
        Assert.Equal("refused", entry.State);
        Assert.True(entry.Size < 1024 * 1024, $"the trace records what was held when it was refused, not 100 MB: {entry}");
    }

    [Fact]
    public async Task A_client_outside_the_listeners_allowed_networks_is_refused_at_connect_and_disconnected()
    {
        var config = new PosternConfig
        {
            Listeners =
            [
                new PosternListener("exchange-only", FreePort.Next(), RequireTls: false) { AllowedClientNetworks = ["40.92.0.0/15", "2a01:111:f400::/48"] },
                new PosternListener("loopback", FreePort.Next(), RequireTls: false) { AllowedClientNetworks = ["127.0.0.0/8", "::1/128"] },
            ],
            DeliveryRequireTls = false,
        };
        await Postern.StartServeAsync(config);

        // 127.0.0.1 is not Exchange Online: 554 in place of the greeting, and the connection is closed by Postern.
        using var refused = new System.Net.Sockets.TcpClient();
        await refused.ConnectAsync(System.Net.IPAddress.Loopback, config.Listeners[0].Port);
        using var reader = new StreamReader(refused.GetStream(), Encoding.ASCII);
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        Assert.Equal("554 5.7.1 Access denied: your network may not connect to this service", await reader.ReadLineAsync(deadline.Token));
        Assert.Null(await reader.ReadLineAsync(deadline.Token));

        await using var allowed = await RawSmtpClient.ConnectAsync(config.Listeners[1].Port);
        Assert.Equal(220, allowed.Greeting.Code);
        Assert.Equal(250, (await allowed.CommandAsync("EHLO client.test")).Code);
        await Poll.UntilAsync(() => Postern.ReadLog().Contains("Refused connection from 127.0.0.1", StringComparison.Ordinal), TimeSpan.FromSeconds(10),
            "the refusal in Postern's log", Diagnostics);
    }

    /// <summary>Fabrikam's message on a connection of its own, with its key; returns once it is at the sink (or fails the test).</summary>
    private async Task<SmtpResponse> SendAndAwaitDeliveryAsync(RelayHarness relay)
    {
        await using var other = await RawSmtpClient.ConnectAsync(relay.PlainPort);
        await other.HelloAsync();
        Assert.Equal(250, (await other.CommandAsync($"MAIL FROM:<{RelayHarness.ExternalSender}>")).Code);
        Assert.Equal(250, (await other.CommandAsync("RCPT TO:<bob@fabrikam.test>")).Code);
        var reply = await other.DataAsync($"{relay.Fabrikam.KeyHeader}\r\nFrom: <{RelayHarness.ExternalSender}>\r\nTo: <bob@fabrikam.test>\r\n" +
            "Subject: fabrikam while a keyless client streams\r\nMessage-ID: <fabrikam@smtpinput.test>\r\n\r\nbody\r\n");
        Assert.True(reply.Code == 250, $"the well-behaved tenant's message: {reply}");
        await relay.Sink.WaitForMessagesAsync(1, TimeSpan.FromSeconds(10), Diagnostics);
        return reply;
    }

    private static async Task StartTransactionAsync(RawSmtpClient client)
    {
        var mail = await client.CommandAsync("MAIL FROM:<sender@external.test>");
        Assert.True(mail.Code == 250, mail.ToString());
        var rcpt = await client.CommandAsync("RCPT TO:<alice@contoso.test>");
        Assert.True(rcpt.Code == 250, rcpt.ToString());
    }

    /// <summary>`du -sb` of Postern's data directory: what an administrator watches.</summary>
    private long DataDirectoryBytes()
    {
        var du = ExternalCommand.RunAsync("du", ["-sb", Postern.DataDirectory], TimeSpan.FromSeconds(30)).GetAwaiter().GetResult().EnsureSuccess();
        return long.Parse(du.StdOut.Split('\t')[0], System.Globalization.CultureInfo.InvariantCulture);
    }

    private string[] SpoolSegments() => System.IO.Directory.GetFiles(Path.Combine(Postern.DataDirectory, "spool"), "*.seg");

    private bool SpoolHolds(string marker) =>
        SpoolSegments().Any(f => File.ReadAllBytes(f).AsSpan().IndexOf(Encoding.ASCII.GetBytes(marker)) >= 0);

    /// <summary>
    /// The message as the spool holds it: from Postern's Received line (the first line it stores) through the end of
    /// <paramref name="body"/>, found by its Message-ID in the active segment.
    /// </summary>
    private byte[] StoredMessage(string messageId, string body)
    {
        foreach (var segment in SpoolSegments())
        {
            var bytes = File.ReadAllBytes(segment);
            var at = bytes.AsSpan().IndexOf(Encoding.ASCII.GetBytes($"Message-ID: <{messageId}>"));
            if (at < 0)
                continue;
            var start = bytes.AsSpan(0, at).LastIndexOf("Received: from "u8);
            var bodyAt = bytes.AsSpan(at).IndexOf("\r\n\r\n"u8) + at + 4;
            Assert.Equal(body, Encoding.ASCII.GetString(bytes, bodyAt, body.Length));
            return bytes[start..(bodyAt + body.Length)];
        }
        throw new Xunit.Sdk.XunitException($"no spool segment holds {messageId}");
    }

    /// <summary>
    /// The messages in one connection's client-to-server bytes, read as a server reads them: a BDAT chunk is exactly
    /// its announced size, DATA runs to CRLF "." CRLF and is dot-unstuffed, and every other line must be a command.
    /// </summary>
    private static IEnumerable<(bool ByBdat, byte[] Content)> SentMessages(byte[] stream)
    {
        var messages = new List<(bool, byte[])>();
        var chunks = new MemoryStream();
        var at = 0;
        while (at < stream.Length)
        {
            var lineEnd = stream.AsSpan(at).IndexOf("\r\n"u8);
            Assert.True(lineEnd >= 0, "a line without CRLF on the wire: " + Encoding.Latin1.GetString(stream, at, stream.Length - at));
            var line = Encoding.Latin1.GetString(stream, at, lineEnd);
            at += lineEnd + 2;
            var words = line.Split(' ');
            switch (words[0].ToUpperInvariant())
            {
                case "BDAT":
                    var size = int.Parse(words[1], System.Globalization.CultureInfo.InvariantCulture);
                    Assert.True(at + size <= stream.Length, $"{line} announced more octets than were written ({stream.Length - at})");
                    chunks.Write(stream, at, size);
                    at += size;
                    if (words.Length > 2 && words[2] == "LAST")
                    {
                        messages.Add((true, chunks.ToArray()));
                        chunks.SetLength(0);
                    }
                    break;
                case "DATA":
                    var end = stream.AsSpan(at).IndexOf("\r\n.\r\n"u8);
                    Assert.True(end >= 0, "DATA without its end");
                    var text = Encoding.Latin1.GetString(stream, at, end + 2);
                    text = (text.StartsWith("..", StringComparison.Ordinal) ? text[1..] : text).Replace("\r\n..", "\r\n.", StringComparison.Ordinal);
                    messages.Add((false, Encoding.Latin1.GetBytes(text)));
                    at += end + 5;
                    break;
                case "EHLO" or "MAIL" or "RCPT" or "RSET" or "NOOP" or "QUIT":
                    break;
                default:
                    Assert.Fail($"not a command where one must be (did a BDAT size differ from what was written?): {line}");
                    break;
            }
        }
        return messages;
    }

    /// <summary>
    /// What went out is what was stored, octet for octet: every stored field, in order and unchanged, with only
    /// delivery's own fields among them (CRLF line ends only), then the same empty line and body, and the final line
    /// end SMTP needs when the stored message has none.
    /// </summary>
    private static void AssertSentAsStored(byte[] stored, byte[] sent)
    {
        string[] delivery = ["X-Postern-Loop", "ARC-Seal", "ARC-Message-Signature", "ARC-Authentication-Results"];
        using var storedRaw = global::Postern.Core.Spool.RawMessage.Parse(stored);
        using var sentRaw = global::Postern.Core.Spool.RawMessage.Parse(sent);
        var next = 0;
        var added = new List<string>();
        for (var i = 0; i < sentRaw.Fields.Count; i++)
        {
            if (next < storedRaw.Fields.Count && sentRaw.Fields[i].AsSpan().SequenceEqual(storedRaw.Fields[next]))
            {
                next++;
                continue;
            }
            var field = Encoding.Latin1.GetString(sentRaw.Fields[i]);
            Assert.True(delivery.Contains(sentRaw.NameOf(i), StringComparer.OrdinalIgnoreCase), $"a field that was not stored: {field}");
            Assert.DoesNotContain("\n", field.Replace("\r\n", "", StringComparison.Ordinal), StringComparison.Ordinal);
            Assert.DoesNotContain("\r", field.Replace("\r\n", "", StringComparison.Ordinal), StringComparison.Ordinal);
            added.Add(sentRaw.NameOf(i)!);
        }
        Assert.Equal(storedRaw.Fields.Count, next);
        Assert.Contains("X-Postern-Loop", added);
        var storedRest = stored[storedRaw.Fields.Sum(f => f.Length)..];
        var sentRest = sent[sentRaw.Fields.Sum(f => f.Length)..];
        byte[] expected = stored[^1] == '\n' ? storedRest : [.. storedRest, .. "\r\n"u8];
        Assert.Equal(Encoding.Latin1.GetString(expected), Encoding.Latin1.GetString(sentRest));
    }

    /// <summary>
    /// The message as Postern sent it, without what the hops add around the stored bytes: Postfix's own fields on top
    /// (Return-Path, Delivered-To, its Received), and the fields Postern adds at delivery below its Received line.
    /// </summary>
    private static byte[] WithoutHopFields(byte[] message)
    {
        var raw = global::Postern.Core.Spool.RawMessage.Parse(message);
        string[] postfix = ["Return-Path", "Delivered-To", "X-Original-To"];
        string[] delivery = ["X-Postern-Loop", "ARC-Seal", "ARC-Message-Signature", "ARC-Authentication-Results"];
        var fields = raw.Fields.Select((f, i) => (Field: f, Name: raw.NameOf(i) ?? "")).ToList();
        while (fields.Count > 0 && postfix.Contains(fields[0].Name, StringComparer.OrdinalIgnoreCase))
            fields.RemoveAt(0);
        Assert.Equal("Received", fields[0].Name); // Postfix's
        fields.RemoveAt(0);
        using var output = new MemoryStream();
        foreach (var (field, name) in fields.Where(f => !delivery.Contains(f.Name, StringComparer.OrdinalIgnoreCase)))
            output.Write(field);
        output.Write("\r\n"u8);
        using var rest = raw.OpenBody();
        rest.CopyTo(output);
        return output.ToArray();
    }

    private async Task<IReadOnlyList<byte[]>> WaitForMaildirAsync(PostfixInstance mta, int count)
    {
        var dir = Path.Combine(mta.MaildirPath, "new");
        await Poll.UntilAsync(() => System.IO.Directory.Exists(dir) && System.IO.Directory.GetFiles(dir).Length >= count, TimeSpan.FromSeconds(60),
            $"{count} messages in the tenant MTA's Maildir", Diagnostics);
        return System.IO.Directory.GetFiles(dir).Select(File.ReadAllBytes).ToList();
    }
}
