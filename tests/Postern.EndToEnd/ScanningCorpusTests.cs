using System.Text;
using Postern.EndToEnd.Infrastructure;
using Xunit.Abstractions;

namespace Postern.EndToEnd;

/// <summary>
/// The shared MIME corpora (stalwart mail-parser's malformed, RFC and third-party samples; MimeKit's
/// test messages, partials, DKIM samples and mboxes) through the live relay: each message gets a
/// well-formed reply from the whole pipeline (clamd, rspamd and the built-in engines), the server keeps
/// running, and what is delivered arrives with its body unchanged and its header fields all there, in
/// order, with only Postern's own fields added.
/// </summary>
[Collection(RspamdCollection.Name)]
public sealed class ScanningCorpusTests(RspamdDaemon rspamd, ITestOutputHelper output) : EndToEndTest(output)
{
    private const string Recipient = "alice@contoso.test";

    /// <summary>Header fields Postern adds to what it delivers back to Microsoft 365.</summary>
    private static readonly string[] Added =
        ["ARC-Seal", "ARC-Message-Signature", "ARC-Authentication-Results", "Received", "Authentication-Results", "X-Postern-Verdict", "X-Postern-Loop"];

    [Fact]
    public async Task Every_corpus_message_gets_a_well_formed_reply_from_every_engine_and_the_relay_keeps_running()
    {
        var clamd = Own(await ClamdDaemon.StartAsync(Directory));
        AddDiagnostics(clamd.Log);
        AddDiagnostics(rspamd.Log);
        Postern.UseClamAv(clamd.UnixEndpoint);
        Postern.UseRspamd(rspamd.Url);
        var relay = await StartRelayAsync();

        var run = await SendCorpusAsync(relay);

        // Every accepted message was scanned by every engine (rspamd's score is always a finding) and got a verdict;
        // what policy held back is quarantined, everything else arrives.
        // The trace is written in batches off the SMTP path: wait until every accepted message has its record.
        Dictionary<string, TraceEntry> trace = [];
        try
        {
            await Poll.UntilAsync(async () =>
            {
                trace = (await TraceQuery.ListAsync(Postern, limit: 5000)).ToDictionary(t => t.QueueId);
                return run.Accepted.Keys.All(id => trace.TryGetValue(id, out var t) && t.Verdict is not null);
            }, TimeSpan.FromSeconds(60), "a trace record with a verdict for every accepted corpus message");
        }
        catch (TimeoutException)
        {
            // Reported message by message below.
        }
        foreach (var (id, (name, _)) in run.Accepted)
        {
            if (!trace.TryGetValue(id, out var entry))
            {
                run.Failures.Add($"{name}: no trace record for {id}");
                continue;
            }
            if (entry.Verdict is null || !entry.Findings.Any(f => f.Engine == "rspamd" && f.Kind == "spam-score"))
                run.Failures.Add($"{name}: trace has no verdict or no rspamd score: {entry}");
            if (entry.Findings.Any(f => f.Kind == "engine-unavailable"))
                run.Failures.Add($"{name}: an engine could not scan it: {entry}");
        }
        var toDeliver = run.Accepted.Keys.Count(id => !(trace.TryGetValue(id, out var t) && t.State == "quarantined"));
        Output.WriteLine($"{run.Files} files, {run.Accepted.Count} accepted, {run.Accepted.Count - toDeliver} quarantined, {toDeliver} to deliver");
        await relay.Sink.WaitForMessagesAsync(toDeliver, TimeSpan.FromSeconds(90), Diagnostics);
        await AssertStillServingAsync(relay);
        Assert.True(run.Failures.Count == 0, $"{run.Failures.Count} problem(s):\n" + string.Join("\n", run.Failures) + await EngineFailuresAsync());
        Assert.Equal(toDeliver, relay.Sink.Count - 1);
    }

    [Fact]
    public async Task Every_delivered_corpus_message_keeps_its_body_and_header_fields_with_only_posterns_fields_added()
    {
        var relay = await StartRelayAsync();

        var run = await SendCorpusAsync(relay);
        var delivered = await relay.Sink.WaitForMessagesAsync(run.Accepted.Count, TimeSpan.FromSeconds(90), Diagnostics);

        var moved = new List<string>();
        var changed = new List<string>();
        var sealedCopies = new List<(string Name, byte[] Bytes)>();
        foreach (var message in delivered)
        {
            var id = message.Mail.ReceivedIds().FirstOrDefault(run.Accepted.ContainsKey);
            if (id is null)
            {
                run.Failures.Add($"{Path.GetFileName(message.FileName)} at the sink has no Received id of a sent message:\n{message.Mail.HeaderSection}");
                continue;
            }
            var (name, original) = run.Accepted[id];
            sealedCopies.Add((name, SinkContent.ReadMessageCrlf(message)));
            var problem = Compare(original, SinkContent.ReadMessage(message));
            if (problem is not null)
                (problem.StartsWith("header field moved", StringComparison.Ordinal) ? moved : changed).Add($"{name} (queued as {id}): {problem}");
        }
        Output.WriteLine($"{run.Files} files, {run.Accepted.Count} accepted and delivered, {delivered.Count} compared; " +
            $"{changed.Count} changed, {moved.Count} with header fields moved");

        // The ARC set Postern added was signed over these very bytes: python3-dkim validates it on every copy.
        var pem = await File.ReadAllTextAsync(Path.Combine(Postern.DataDirectory, "keys", "arc-postern1.pem"));
        var keys = new Dictionary<string, string> { ["postern1._domainkey.arc.postern.example"] = PythonDkim.TxtRecordForPrivateKeyPem(pem) };
        var checks = await PythonDkim.VerifyNewestArcSetsAsync(Directory, sealedCopies.Select(c => c.Bytes).ToList(), keys);
        // python3-dkim refuses to read a header section with a line that is not a well-formed header field; those
        // few corpus messages (kept byte for byte above) are the only ones it cannot check.
        var unreadable = sealedCopies.Zip(checks)
            .Where(c => c.Second.Detail.StartsWith("MessageFormatError", StringComparison.Ordinal) && HasMalformedFieldLine(c.First.Bytes))
            .Select(c => c.First.Name).ToHashSet();
        Output.WriteLine($"python3-dkim validated Postern's ARC set on {checks.Count(c => c.MessageSignature && c.Seal)} of {checks.Count} copies; " +
            $"{unreadable.Count} it cannot parse (a malformed header line): {string.Join(", ", unreadable)}");
        var unsealed = sealedCopies.Zip(checks).Where(c => !(c.Second.MessageSignature && c.Second.Seal) && !unreadable.Contains(c.First.Name))
            .Select(c => $"{c.First.Name}: ARC-Message-Signature {(c.Second.MessageSignature ? "valid" : "INVALID")}, ARC-Seal {(c.Second.Seal ? "valid" : "INVALID")} ({c.Second.Detail})")
            .ToList();
        Assert.True(unsealed.Count == 0, $"{unsealed.Count} of {checks.Count} delivered copies fail python3-dkim's check of Postern's ARC set:\n" + string.Join("\n", unsealed));
        await AssertStillServingAsync(relay);
        Assert.True(run.Failures.Count == 0, $"{run.Failures.Count} problem(s):\n" + string.Join("\n", run.Failures) + await EngineFailuresAsync());
        Assert.True(changed.Count + moved.Count == 0,
            $"{changed.Count} message(s) changed beyond added header fields:\n{string.Join("\n", changed)}\n\n" +
            $"{moved.Count} message(s) with original header fields moved:\n{string.Join("\n", moved)}");
    }

    /// <summary>
    /// Whether the header section has a line that is not a well-formed field (RFC 5322 §2.2): a name of printable
    /// ASCII other than the colon, directly followed by the colon.
    /// </summary>
    private static bool HasMalformedFieldLine(byte[] message) =>
        global::Postern.Core.Spool.RawMessage.Parse(message).Fields.Any(field =>
        {
            var colon = Array.IndexOf(field, (byte)':');
            return colon <= 0 || field.AsSpan(0, colon).IndexOfAnyExceptInRange((byte)33, (byte)126) >= 0;
        });

    private sealed record CorpusRun(int Files, Dictionary<string, (string Name, byte[] Original)> Accepted, List<string> Failures);

    /// <summary>
    /// Sends every corpus file (an X-Postern-Key header on top, as the Exchange Online rule adds it), one
    /// connection each. Problems with the replies are collected, not thrown, so one run reports them all.
    /// </summary>
    private async Task<CorpusRun> SendCorpusAsync(RelayHarness relay)
    {
        var root = ScanSamples.ConformanceDirectory;
        var files = new[] { "stalwart-mail-parser", "mimekit-testdata" }
            .SelectMany(c => System.IO.Directory.EnumerateFiles(Path.Combine(root, c), "*", SearchOption.AllDirectories))
            .Where(f => !Path.GetFileName(f).StartsWith("COPYING", StringComparison.Ordinal) && !f.EndsWith("LICENSE", StringComparison.Ordinal)
                && !f.Contains("LICENSES", StringComparison.Ordinal)
                && Path.GetExtension(f) is not (".json" or ".pem" or ".pub"))
            .Order(StringComparer.Ordinal)
            .ToList();
        Assert.True(files.Count > 90, $"only {files.Count} corpus files under {root}");

        var failures = new List<string>();
        var accepted = new Dictionary<string, (string, byte[])>();
        var replies = new Dictionary<string, int>();
        foreach (var file in files)
        {
            var name = Path.GetRelativePath(root, file);
            var original = await File.ReadAllBytesAsync(file);
            var message = Encoding.ASCII.GetBytes(relay.Contoso.KeyHeader + "\r\n").Concat(original).ToArray();
            SubmissionResult result;
            try
            {
                result = await SmtpSubmission.SendAsync(relay.PlainPort, RelayHarness.ExternalSender, [Recipient], message);
            }
            catch (Exception e) when (e is IOException or InvalidDataException or TimeoutException or System.Net.Sockets.SocketException)
            {
                failures.Add($"{name}: no well-formed reply: {e.GetType().Name}: {e.Message}");
                continue;
            }
            var reply = result.Reply;
            var key = $"{reply.Code} ({result.Stage})";
            replies[key] = replies.GetValueOrDefault(key) + 1;
            if (!IsWellFormed(reply))
                failures.Add($"{name}: malformed reply {reply}");
            else if (reply.Code is >= 400 and < 500)
                failures.Add($"{name}: deferred although every engine is up: {result}");
            else if (result.QueueId is { } id)
                accepted[id] = (name, original);
            else if (reply.Code != 250)
                Output.WriteLine($"{name}: {result}");
        }
        Output.WriteLine("replies: " + string.Join(", ", replies.OrderBy(r => r.Key).Select(r => $"{r.Key} × {r.Value}")));
        Assert.True(Postern.IsServing, "postern serve exited while the corpus went through:\n" + Postern.ReadLogTail());
        Assert.True(accepted.Count > files.Count * 3 / 4, $"only {accepted.Count} of {files.Count} accepted: {string.Join(", ", replies)}");
        return new CorpusRun(files.Count, accepted, failures);
    }

    /// <summary>What the trace says about engines that could not scan (the reason names the engine and the exception), for a failure message.</summary>
    private async Task<string> EngineFailuresAsync()
    {
        var reasons = (await TraceQuery.ListAsync(Postern, limit: 5000))
            .SelectMany(t => t.Findings.Where(f => f.Kind == "engine-unavailable").Select(f => $"{t.QueueId} ({t.Subject}): {f.Engine}: {f.Reason}"))
            .ToList();
        // Each warning with the first lines of its exception.
        var log = Postern.ReadLog().Split('\n');
        var warnings = log.Select((line, i) => (line, i))
            .Where(x => x.line.Contains("warn:", StringComparison.Ordinal) && x.line.Contains("engine", StringComparison.OrdinalIgnoreCase))
            .Select(x => string.Join("\n", log.Skip(x.i).Take(6)));
        return reasons.Count == 0 ? "" : "\nengines that could not scan:\n" + string.Join("\n", reasons) + "\n" + string.Join("\n", warnings);
    }

    /// <summary>The server still runs and relays: one more ordinary message goes through.</summary>
    private async Task AssertStillServingAsync(RelayHarness relay)
    {
        var before = relay.Sink.Count;
        var after = await SmtpSubmission.SendAsync(relay.PlainPort, RelayHarness.ExternalSender, [Recipient],
            ScanSamples.TextMessage(relay.Contoso.KeyHeader, RelayHarness.ExternalSender, Recipient, "after the corpus", "Still here."));
        Assert.True(after.QueueId is not null, after.ToString());
        await relay.Sink.WaitForMessagesAsync(before + 1, TimeSpan.FromSeconds(30), Diagnostics);
        Assert.True(Postern.IsServing, Postern.ReadLogTail());
    }

    /// <summary>A reply line as RFC 5321 §4.2 and RFC 3463 want it from Postern: 2xx/4xx/5xx with an enhanced status code of the same class.</summary>
    private static bool IsWellFormed(SmtpResponse reply)
    {
        var text = reply.Lines.LastOrDefault() ?? "";
        var cls = reply.Code / 100;
        return cls is 2 or 4 or 5 && text.Length > 6 && text[0] - '0' == cls && text[1] == '.' && char.IsDigit(text[2]);
    }

    /// <summary>
    /// Null when <paramref name="delivered"/> is <paramref name="original"/> with header fields added (and the
    /// relay key removed): the body after the header section is the same bytes, and every original header
    /// field is there, unchanged and in the same order. Both sides are compared with LF line ends and without
    /// CRs, since smtp-sink stores lines that way.
    /// </summary>
    private static string? Compare(byte[] original, byte[] delivered)
    {
        var (originalHeaders, originalBody) = Split(Normalize(original));
        var (deliveredHeaders, deliveredBody) = Split(Normalize(delivered));
        if (!originalBody.AsSpan().SequenceEqual(deliveredBody))
            return $"body differs at byte {FirstDifference(originalBody, deliveredBody)} of {originalBody.Length} (delivered {deliveredBody.Length}):\n" +
                   $"  original:  {Excerpt(originalBody, FirstDifference(originalBody, deliveredBody))}\n" +
                   $"  delivered: {Excerpt(deliveredBody, FirstDifference(originalBody, deliveredBody))}";

        var expected = Fields(originalHeaders);
        var actual = Fields(deliveredHeaders);
        var at = 0;
        foreach (var field in expected)
        {
            var from = at;
            while (at < actual.Count && actual[at] != field)
                at++;
            if (at == actual.Count)
            {
                var elsewhere = actual.IndexOf(field);
                return elsewhere < 0
                    ? $"header field missing or changed: {Show(field)}"
                    : $"header field moved: {Show(field)} is field {elsewhere + 1} of the delivered header section, right after " +
                      $"'{Show(actual[Math.Max(0, elsewhere - 1)].Split(':')[0])}', instead of after '{Show(from > 0 ? actual[from - 1].Split(':')[0] : "(top)")}' as sent";
            }
            at++;
        }
        var extra = actual.Except(expected).Select(f => f.Split(':')[0]).Where(n => !Added.Contains(n, StringComparer.OrdinalIgnoreCase)).Distinct().ToList();
        return extra.Count > 0 ? $"unexpected header fields added: {string.Join(", ", extra)}" : null;
    }

    /// <summary>LF line ends, no CR at all, ending with a line end (the SMTP client adds the last one).</summary>
    private static byte[] Normalize(byte[] message)
    {
        var output = message.Where(b => b != '\r').ToList();
        if (output.Count > 0 && output[^1] != '\n')
            output.Add((byte)'\n');
        return output.ToArray();
    }

    /// <summary>The header section (each field with its line end) and the body after the empty line; no empty line: all header.</summary>
    private static (byte[] Headers, byte[] Body) Split(byte[] message)
    {
        if (message.Length > 0 && message[0] == '\n')
            return ([], message[1..]);
        var blank = message.AsSpan().IndexOf("\n\n"u8);
        return blank < 0 ? (message, []) : (message[..(blank + 1)], message[(blank + 2)..]);
    }

    /// <summary>Header fields as raw text, continuation lines included.</summary>
    private static List<string> Fields(byte[] headers)
    {
        var fields = new List<string>();
        foreach (var line in Encoding.Latin1.GetString(headers).Split('\n'))
        {
            if (line.Length == 0)
                continue;
            if (line[0] is ' ' or '\t' && fields.Count > 0)
                fields[^1] += "\n" + line;
            else
                fields.Add(line);
        }
        // The relay key header the test put on top is removed by Postern.
        return fields.Where(f => !f.StartsWith("X-Postern-Key:", StringComparison.OrdinalIgnoreCase)).ToList();
    }

    private static int FirstDifference(byte[] a, byte[] b)
    {
        var n = Math.Min(a.Length, b.Length);
        for (var i = 0; i < n; i++)
        {
            if (a[i] != b[i])
                return i;
        }
        return n;
    }

    private static string Excerpt(byte[] data, int at)
    {
        var start = Math.Max(0, at - 40);
        var end = Math.Min(data.Length, at + 40);
        return Show(Encoding.Latin1.GetString(data, start, end - start));
    }

    private static string Show(string text) => text.Replace("\n", "\\n").Replace("\t", "\\t");
}
