using System.Net;
using System.Net.Sockets;
using System.Text;
using Postern.EndToEnd.Infrastructure;
using Xunit.Abstractions;

namespace Postern.EndToEnd;

/// <summary>
/// Garbage on the wire gets the reply its line calls for, every line one, and the session then ends only by QUIT
/// (or by the server's own 421); the server keeps serving.
/// </summary>
public sealed class MalformedInputTests(ITestOutputHelper output) : EndToEndTest(output)
{
    private const int Cases = 1000;

    // What Postern.Smtp sends (src/Postern.Smtp/Internal/SmtpReplies.cs), spelled out here so a change to either shows.
    private const string LineTooLong = "500 5.5.2 Line too long";
    private const string BareLineEnding = "500 5.5.2 Bare CR or LF in command line; lines must end with CRLF";

    /// <summary>RFC 5321 §4.5.3.1.4: 512 octets including CRLF, so the LF must be among the first 512 bytes of a line.</summary>
    private const int MaxCommandLine = 512;
    private const int Workers = 4;
    private static readonly TimeSpan PerConnection = TimeSpan.FromSeconds(20);

    [Fact]
    public async Task Answers_random_truncated_and_oversize_command_lines_then_still_relays()
    {
        var relay = await StartRelayAsync();
        var seed = int.TryParse(Environment.GetEnvironmentVariable("POSTERN_FUZZ_SEED"), out var s) ? s : 5321;
        Output.WriteLine($"seed {seed} (set POSTERN_FUZZ_SEED to replay another)");
        var random = new Random(seed);
        var inputs = Enumerable.Range(0, Cases).Select(i => Generate(random, i)).ToList();
        // The run must exercise the replies it checks exactly, whatever the seed.
        Assert.Contains(inputs, i => ExpectedReplies(i.Payload).Contains(LineTooLong));
        Assert.Contains(inputs, i => ExpectedReplies(i.Payload).Contains(BareLineEnding));

        var results = new (string Kind, string Outcome, string? Problem)[Cases];
        var next = -1;
        await Task.WhenAll(Enumerable.Range(0, Workers).Select(_ => Task.Run(async () =>
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < Cases)
                results[i] = await RunCaseAsync(relay.PlainPort, inputs[i]);
        })));

        foreach (var group in results.GroupBy(r => (r.Kind, r.Outcome)).OrderBy(g => g.Key.Kind))
            Output.WriteLine($"{group.Key.Kind,-12} {group.Key.Outcome,-28} {group.Count()}");
        var problems = results.Select((r, i) => (r, i)).Where(x => x.r.Problem is not null)
            .Select(x => $"#{x.i} {x.r.Kind}: {x.r.Problem} (input: {Show(inputs[x.i].Payload)})").ToList();
        Assert.True(problems.Count == 0, $"{problems.Count} of {Cases} inputs were not answered properly:\n" + string.Join("\n", problems.Take(30)));

        // A normal session afterwards is served as usual.
        var normal = await relay.SendPlainAsync("alice@contoso.test", "after the garbage", relay.Contoso.KeyHeader);
        Assert.True(normal.QueueId is not null, normal.ToString());
        var message = Assert.Single(await relay.Sink.WaitForMessagesAsync(1, TimeSpan.FromSeconds(30), Diagnostics));
        Assert.Equal(normal.QueueId, message.Mail.FirstReceivedId());
    }

    [Fact]
    public async Task Closes_with_421_after_twenty_bad_commands_and_keeps_serving_others()
    {
        var relay = await StartRelayAsync();
        var (received, timedOut) = await ExchangeAsync(relay.PlainPort, Encoding.ASCII.GetBytes(string.Concat(Enumerable.Repeat("XYZZY\r\n", 25))));
        Assert.False(timedOut, $"the server neither answered nor closed: {Show(received)}");
        var problem = ParseReplies(received, out var replies);
        Assert.True(problem is null, problem);
        // SmtpLimits.MaxErrors (20): the twentieth mistake is answered, then the 421, then the close; no 221 to our QUIT.
        Assert.Equal([.. Enumerable.Repeat("500 5.5.2 Command unrecognized", 20), "421 4.7.0 Too many errors, closing connection"], replies);

        var normal = await relay.SendPlainAsync("alice@contoso.test", "after the 421", relay.Contoso.KeyHeader);
        Assert.True(normal.QueueId is not null, normal.ToString());
    }

    private sealed record FuzzInput(string Kind, byte[] Payload);

    private static readonly string[] ValidCommands =
    [
        "EHLO client.test", "HELO client.test", "MAIL FROM:<sender@external.test> SIZE=1000 BODY=8BITMIME",
        "RCPT TO:<alice@contoso.test>", "RCPT TO:<alice@contoso.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;alice@contoso.test",
        "DATA", "RSET", "NOOP", "VRFY alice", "EXPN list", "HELP", "STARTTLS", "AUTH PLAIN dGVzdAB0ZXN0AHRlc3Q=",
        "MAIL FROM:<> SMTPUTF8", "XCLIENT ADDR=192.0.2.1", "ETRN contoso.test", "BDAT abc LAST", "BDAT -1", "BDAT x99 LAST",
    ];
    // No BDAT with a plausible size anywhere: the server must then read that many bytes as the chunk,
    // which would swallow the QUIT and leave the connection waiting by design.

    private static readonly string[] Verbs = ["EHLO", "HELO", "MAIL", "RCPT", "DATA", "RSET", "NOOP", "VRFY", "STARTTLS", "BDAT", "AUTH", "XYZZY"];

    private static FuzzInput Generate(Random random, int index)
    {
        // Every 100th input is a huge line; the rest are spread over the other kinds.
        if (index % 100 == 99)
            return new("huge", Line(new string('A', random.Next(100_000, 1_000_001))));
        switch (random.Next(6))
        {
            case 0:
                return new("printable", Line(RandomText(random, random.Next(1, 120), printable: true)));
            case 1:
                {
                    var bytes = new byte[random.Next(1, 200)];
                    random.NextBytes(bytes);
                    return new("binary", [.. bytes, (byte)'\r', (byte)'\n']);
                }
            case 2:
                {
                    var command = ValidCommands[random.Next(ValidCommands.Length)];
                    return new("truncated", Line(command[..random.Next(0, command.Length)]));
                }
            case 3:
                {
                    var verb = Verbs[random.Next(Verbs.Length)];
                    var argument = (verb == "BDAT" ? "x" : "") + RandomText(random, random.Next(0, 300), printable: random.Next(2) == 0);
                    return new("garbage-arg", Line(verb + " " + argument));
                }
            case 4:
                {
                    var length = random.Next(513, 20_000);
                    var prefix = random.Next(3) switch { 0 => "MAIL FROM:<", 1 => "RCPT TO:<", _ => "EHLO " };
                    return new("oversize", Line(prefix + new string('x', length) + "@contoso.test>"));
                }
            default:
                {
                    // Bare LF / bare CR line ends and NULs inside otherwise valid commands.
                    var command = ValidCommands[random.Next(ValidCommands.Length)];
                    var cut = random.Next(0, command.Length);
                    var odd = random.Next(3) switch { 0 => "\n", 1 => "\r", _ => "\0" };
                    return new("line-ends", Encoding.ASCII.GetBytes(command[..cut] + odd + command[cut..] + (random.Next(2) == 0 ? "\n" : "\r\n")));
                }
        }
    }

    private static byte[] Line(string text) => Encoding.UTF8.GetBytes(text + "\r\n");

    private static string RandomText(Random random, int length, bool printable)
    {
        var chars = new char[length];
        for (var i = 0; i < length; i++)
            chars[i] = printable ? (char)random.Next(0x20, 0x7F) : (char)random.Next(0x01, 0x800);
        return new string(chars);
    }

    /// <summary>
    /// Greeting, the input, then QUIT; reads until the server closes. Every byte received must form complete
    /// reply lines "NNN text" / "NNN-text" (NNN 2xx–5xx, printable ASCII), each input line must get its reply,
    /// and the connection must end in time.
    /// </summary>
    private static async Task<(string Kind, string Outcome, string? Problem)> RunCaseAsync(int port, FuzzInput input)
    {
        var (received, timedOut) = await ExchangeAsync(port, input.Payload);
        if (timedOut)
            return (input.Kind, "timeout", $"neither a complete answer nor a close within {PerConnection.TotalSeconds:0} s; got: {Show(received)}");
        string? outcome = null;
        var problem = ParseReplies(received, out var replies) ?? CheckAnswers(ExpectedReplies(input.Payload), replies, out outcome);
        return (input.Kind, problem is null ? outcome! : "wrong", problem);
    }

    /// <summary>Connects, sends <paramref name="payload"/> and QUIT, and returns everything received until the server closed.</summary>
    private static async Task<(byte[] Received, bool TimedOut)> ExchangeAsync(int port, byte[] payload)
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        using var cts = new CancellationTokenSource(PerConnection);
        var received = new MemoryStream();
        try
        {
            await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), cts.Token);
            var reader = ReadAllAsync(socket, received, cts.Token);
            try
            {
                await socket.SendAsync(payload, SocketFlags.None, cts.Token);
                await socket.SendAsync("QUIT\r\n"u8.ToArray(), SocketFlags.None, cts.Token);
            }
            catch (SocketException)
            {
                // The server closed while we were still writing; whether it was entitled to is checked by the caller.
            }
            await reader;
            return (received.ToArray(), false);
        }
        catch (OperationCanceledException)
        {
            return (received.ToArray(), true);
        }
    }

    /// <summary>Reads until EOF or reset.</summary>
    private static async Task ReadAllAsync(Socket socket, MemoryStream into, CancellationToken token)
    {
        var buffer = new byte[16384];
        try
        {
            while (true)
            {
                var n = await socket.ReceiveAsync(buffer, SocketFlags.None, token);
                if (n == 0)
                    return;
                into.Write(buffer, 0, n);
            }
        }
        catch (SocketException)
        {
            // A reset ends the conversation like a close; what arrived before it is judged the same way.
        }
    }

    /// <summary>
    /// One entry per line of <paramref name="payload"/> as the server splits it (at each LF): the exact reply that
    /// line must get when the line alone decides it (too long, or not ended by a lone CRLF), else null.
    /// </summary>
    private static List<string?> ExpectedReplies(byte[] payload)
    {
        var expected = new List<string?>();
        for (var start = 0; start < payload.Length;)
        {
            var lf = Array.IndexOf(payload, (byte)'\n', start);
            if (lf < 0)
                throw new InvalidOperationException("every fuzz input ends with a line feed");
            var raw = payload.AsSpan(start, lf - start);
            if (raw.Length >= MaxCommandLine)
                expected.Add(LineTooLong);
            else if (raw.IsEmpty || raw[^1] != (byte)'\r' || raw[..^1].Contains((byte)'\r'))
                expected.Add(BareLineEnding);
            else
                expected.Add(null);
            start = lf + 1;
        }
        return expected;
    }

    /// <summary>
    /// Replies after the greeting must answer the input lines one by one, then QUIT with 221 as the last reply.
    /// The only earlier ends allowed: a 421 (the server giving up on the client, e.g. after too many errors) as
    /// the very last reply, or "220 2.0.0" to a STARTTLS line, after which our clear-text QUIT cannot be a TLS handshake.
    /// </summary>
    private static string? CheckAnswers(List<string?> expected, List<string> replies, out string? outcome)
    {
        outcome = null;
        var r = 0;
        for (var line = 0; line < expected.Count; line++, r++)
        {
            if (r >= replies.Count)
                return $"no reply to input line {line + 1} of {expected.Count}; replies: [{string.Join(" | ", replies)}]";
            if (replies[r].StartsWith("421 ", StringComparison.Ordinal))
                return EndsHere(r, "421 before the input was answered", out outcome);
            if (expected[line] is { } must && replies[r] != must)
                return $"input line {line + 1}: expected '{must}', got '{replies[r]}'";
            if (r + 1 < replies.Count && replies[r + 1].StartsWith("421 ", StringComparison.Ordinal))
                return EndsHere(r + 1, "421", out outcome);
            if (replies[r].StartsWith("220 2.0.0", StringComparison.Ordinal))
                return EndsHere(r, "starttls", out outcome);
        }
        if (r >= replies.Count || !replies[r].StartsWith("221 ", StringComparison.Ordinal))
            return $"QUIT was not answered with 221 after {expected.Count} answered line(s); replies: [{string.Join(" | ", replies)}]";
        return EndsHere(r, "answered, 221", out outcome);

        string? EndsHere(int index, string how, out string? result)
        {
            result = how;
            return index == replies.Count - 1 ? null : $"replies after the session ended ({how}): [{string.Join(" | ", replies.Skip(index))}]";
        }
    }

    /// <summary>Splits the bytes into replies (the final line of each, "NNN text"), after checking the 220 greeting and every line's form.</summary>
    private static string? ParseReplies(byte[] data, out List<string> replies)
    {
        replies = [];
        var text = Encoding.Latin1.GetString(data);
        if (!text.StartsWith("220", StringComparison.Ordinal))
            return $"no 220 greeting: {Show(data)}";
        if (!text.EndsWith("\r\n", StringComparison.Ordinal))
            return $"reply cut off mid-line: {Show(data)}";
        string? continuing = null;
        var greeting = true;
        foreach (var line in text[..^2].Split("\r\n"))
        {
            if (line.Length < 3 || line[0] is < '2' or > '5' || !char.IsAsciiDigit(line[1]) || !char.IsAsciiDigit(line[2]) ||
                (line.Length > 3 && line[3] is not (' ' or '-')))
                return $"malformed reply line '{Show(Encoding.Latin1.GetBytes(line))}'";
            if (line.Any(c => c is < ' ' or > '~'))
                return $"control or non-ASCII characters in reply line '{Show(Encoding.Latin1.GetBytes(line))}'";
            if (continuing is not null && line[..3] != continuing)
                return $"multi-line reply changed code: '{line}' after {continuing}-";
            continuing = line.Length > 3 && line[3] == '-' ? line[..3] : null;
            if (continuing is null)
            {
                if (!greeting)
                    replies.Add(line);
                greeting = false;
            }
        }
        return continuing is null ? null : "multi-line reply never finished";
    }

    private static string Show(byte[] bytes)
    {
        var sb = new StringBuilder();
        foreach (var b in bytes.Take(160))
            sb.Append(b is >= 0x20 and < 0x7F ? ((char)b).ToString() : $"\\x{b:x2}");
        if (bytes.Length > 160)
            sb.Append($"… ({bytes.Length} bytes)");
        return sb.ToString();
    }
}
