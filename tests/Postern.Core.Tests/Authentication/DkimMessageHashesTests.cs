using System.Security.Cryptography;
using System.Text;
using MimeKit;
using MimeKit.Cryptography;
using Postern.Core.Authentication;

namespace Postern.Core.Tests.Authentication;

/// <summary>
/// <see cref="DkimMessageHashes"/> does MimeKit's canonicalization itself (for native SHA-256 and RSA), so it must
/// agree with MimeKit byte for byte: every message of the shared MIME corpora (malformed ones included), signed by
/// MimeKit's own <see cref="DkimSigner"/> in both canonicalizations, gets the same verdict from Postern's DKIM check
/// as from MimeKit's <see cref="DkimVerifier"/>, before and after the body is changed — with the body hashed as MimeKit
/// writes the parsed message and, as the relay does, from the bytes received.
/// </summary>
public sealed class DkimMessageHashesTests
{
    private static readonly string[] SignedHeaders = ["From", "To", "Cc", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type", "Content-Transfer-Encoding"];

    [Theory]
    [InlineData("stalwart-mail-parser")]
    [InlineData("mimekit-testdata")]
    public async Task Every_corpus_message_signed_by_mimekit_gets_mimekits_verdict(string corpus)
    {
        var world = AuthenticationScenario.Instance;
        var ed25519 = DkimSigningKey.GenerateEd25519();
        var dns = world.Dns().AddTxt("ed1._domainkey.fabrikam.test", ed25519.DnsRecord("fabrikam.test", "ed1").Value);
        var checker = new DkimChecker(dns);
        var mimekit = new DkimVerifier(new DnsDkimKeyLocator(dns)) { MinimumRsaKeyLength = DkimChecker.MinimumRsaKeyBits };
        mimekit.Enable(DkimSignatureAlgorithm.Ed25519Sha256);

        var checkedSignatures = 0;
        var agreedAsExpected = 0; // both pass as signed, both fail once the body changed
        var disagreements = new List<string>();
        foreach (var (file, stored) in CorpusFiles(corpus).SelectMany(f => new[] { (f, false), (f, true) }))
        {
            MimeMessage message;
            try
            {
                var bytes = await File.ReadAllBytesAsync(file);
                message = MimeMessage.Load(new MemoryStream(stored ? bytes : ToCrlf(bytes)));
            }
            catch (FormatException)
            {
                continue; // not a message MimeKit can parse at all (the relay would not get this far either)
            }
            if (message.Body is null)
                continue;
            // Simple/simple with RSA, relaxed/relaxed with Ed25519: both canonicalizations, both kinds of key.
            new DkimSigner(world.SenderKey.PrivateKey, "fabrikam.test", "s2048", DkimSignatureAlgorithm.RsaSha256)
            {
                HeaderCanonicalizationAlgorithm = DkimCanonicalizationAlgorithm.Simple,
                BodyCanonicalizationAlgorithm = DkimCanonicalizationAlgorithm.Simple,
            }.Sign(message, SignedHeaders);
            new DkimSigner(ed25519.PrivateKey, "fabrikam.test", "ed1", DkimSignatureAlgorithm.Ed25519Sha256)
            {
                HeaderCanonicalizationAlgorithm = DkimCanonicalizationAlgorithm.Relaxed,
                BodyCanonicalizationAlgorithm = DkimCanonicalizationAlgorithm.Relaxed,
            }.Sign(message, SignedHeaders);
            // The stored form goes on with LF line ends, which MimeKit's hashing (and so Postern's) makes CRLF.
            var wire = stored ? WithLf(message) : AuthenticationScenario.Wire(message);

            foreach (var (form, bytes) in new[] { ("as signed", wire), ("body changed", WithBodyChanged(wire)) })
            {
                var received = MimeMessage.Load(new MemoryStream(bytes));
                var signatures = received.Headers.Where(h => h.Id == HeaderId.DkimSignature).ToArray();
                var results = await checker.VerifyAsync(received);
                // The relay hashes the body from the bytes received, not from the parsed message written out again.
                var fromBytes = await checker.VerifyAsync(new DkimMessageHashes(received, () => global::Postern.Core.Spool.RawMessage.Parse(bytes).OpenBody()), CancellationToken.None);
                for (var i = 0; i < signatures.Length; i++)
                {
                    if (!signatures[i].Value.Contains("d=fabrikam.test", StringComparison.Ordinal))
                        continue; // a signature the corpus message came with
                    var expected = await mimekit.VerifyAsync(received, signatures[i]);
                    if (expected != (results[i].Result == DkimResult.Pass))
                        disagreements.Add($"{Path.GetFileName(file)} ({form}) signature {i + 1}: MimeKit says {expected}, Postern {results[i].Keyword} ({results[i].Reason})");
                    if (expected != (fromBytes[i].Result == DkimResult.Pass))
                        disagreements.Add($"{Path.GetFileName(file)} ({form}) signature {i + 1}: MimeKit says {expected}, Postern over the received bytes {fromBytes[i].Keyword} ({fromBytes[i].Reason})");
                    else if (expected == (form == "as signed"))
                        agreedAsExpected++;
                    checkedSignatures++;
                }
            }
        }

        Assert.True(checkedSignatures > 40, $"only {checkedSignatures} signatures checked in {corpus}");
        Assert.True(agreedAsExpected > checkedSignatures * 9 / 10, $"only {agreedAsExpected} of {checkedSignatures} signatures passed as signed and failed once changed");
        Assert.True(disagreements.Count == 0, string.Join('\n', disagreements));
    }

    [PythonDkimFact]
    public async Task A_signature_over_the_first_l_octets_holds_when_text_is_added_after_them_and_fails_when_they_change()
    {
        // What l= is for: a mailing list appends a footer. Signed by dkimpy, an implementation independent of MimeKit.
        var texts = new[]
        {
            "Hello Bob,  \r\n\r\n\tthe figures\t are   attached.\r\n\r\n\r\n",
            "--b1\r\nContent-Type: text/plain\r\n\r\nPart one \r\n--b1\r\nContent-Type: text/html\r\n\r\n<p>two</p>\r\n--b1--\r\n",
        };
        var messages = texts.SelectMany(text => new[] { "simple/simple", "relaxed/relaxed", "relaxed/simple" }.Select(c => (Message: Encoding.ASCII.GetBytes(
            "From: Alice <alice@fabrikam.test>\r\nTo: bob@contoso.test\r\nSubject: Figures\r\nDate: Mon, 23 Nov 2026 09:14:07 +0000\r\nMIME-Version: 1.0\r\n"
            + (text.StartsWith("--", StringComparison.Ordinal) ? "Content-Type: multipart/alternative; boundary=\"b1\"\r\n" : "Content-Type: text/plain\r\n")
            + "\r\n" + text), Canonicalization: c, Length: true))).ToArray();
        var signed = PythonDkim.Sign("fabrikam.test", "s2048", await File.ReadAllTextAsync(DkimConformanceTests.DkimpyData("2048_testkey.key")), messages);
        var checker = new DkimChecker(AuthenticationScenario.Instance.Dns());

        foreach (var (wire, (_, c, _)) in signed.Zip(messages))
        {
            Assert.Contains("; l=", Encoding.ASCII.GetString(wire), StringComparison.Ordinal);
            var withFooter = MimeMessage.Load(new MemoryStream([.. wire, .. "-- \r\nTo unsubscribe, write to list@lists.test\r\n"u8]));
            var result = Assert.Single(await checker.VerifyAsync(withFooter));
            Assert.True(result.Result == DkimResult.Pass, $"{c}, footer added: {result.Keyword} ({result.Reason})");

            var changed = Encoding.ASCII.GetBytes(Encoding.ASCII.GetString(wire).Replace("attached", "attacked").Replace("Part one", "Part 0ne"));
            var tampered = Assert.Single(await checker.VerifyAsync(MimeMessage.Load(new MemoryStream(changed))));
            Assert.True(tampered.Result == DkimResult.Fail, $"{c}, signed text changed: {tampered.Keyword} ({tampered.Reason})");
        }
    }

    [Fact]
    public void A_large_signed_message_is_hashed_without_holding_its_body_again()
    {
        // 20 MB of attachment, as business mail carries: verification must not cost a multiple of that in memory.
        var message = new MimeMessage();
        message.From.Add(new MailboxAddress("Alice", "alice@fabrikam.test"));
        message.To.Add(new MailboxAddress("Bob", "bob@contoso.test"));
        message.Subject = "The scans";
        var body = new BodyBuilder { TextBody = "Hello Bob,\n\nthe scans are attached.\n" };
        body.Attachments.Add("scans.bin", RandomNumberGenerator.GetBytes(15_000_000), new ContentType("application", "octet-stream"));
        message.Body = body.ToMessageBody();
        message.Prepare(EncodingConstraint.SevenBit);
        new DkimSigner(AuthenticationScenario.Instance.SenderKey.PrivateKey, "fabrikam.test", "s2048", DkimSignatureAlgorithm.RsaSha256)
        {
            HeaderCanonicalizationAlgorithm = DkimCanonicalizationAlgorithm.Relaxed,
            BodyCanonicalizationAlgorithm = DkimCanonicalizationAlgorithm.Relaxed,
        }.Sign(message, SignedHeaders);
        var wire = AuthenticationScenario.Wire(message);
        var received = MimeMessage.Load(new MemoryStream(wire));
        var bh = DkimTagList.TryParse(received.Headers[HeaderId.DkimSignature]!)!["bh"];

        var hashes = new DkimMessageHashes(received);
        var before = GC.GetAllocatedBytesForCurrentThread();
        var matches = hashes.BodyHashMatches(DkimCanonicalizationAlgorithm.Relaxed, -1, bh);
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.True(matches);
        Assert.True(allocated < wire.Length / 20, $"hashing a {wire.Length:N0}-byte message allocated {allocated:N0} bytes");
    }

    private static IEnumerable<string> CorpusFiles(string corpus) =>
        Directory.EnumerateFiles(ConformanceData.PathOf(corpus), "*", SearchOption.AllDirectories)
            .Where(f => !Path.GetFileName(f).StartsWith("COPYING", StringComparison.Ordinal) && !f.EndsWith("LICENSE", StringComparison.Ordinal)
                && !f.EndsWith(".json", StringComparison.Ordinal) && !f.EndsWith(".pem", StringComparison.Ordinal) && !f.EndsWith(".pub", StringComparison.Ordinal))
            .Order(StringComparer.Ordinal);

    private static byte[] WithLf(MimeMessage message)
    {
        var options = FormatOptions.Default.Clone();
        options.NewLineFormat = NewLineFormat.Unix;
        using var stream = new MemoryStream();
        message.WriteTo(options, stream);
        return stream.ToArray();
    }

    /// <summary>The message with one more line at the start of its body, which every body hash must notice.</summary>
    private static byte[] WithBodyChanged(byte[] wire)
    {
        var crlf = wire.AsSpan().IndexOf("\r\n\r\n"u8);
        var lf = wire.AsSpan().IndexOf("\n\n"u8);
        var (end, gap) = crlf >= 0 && (lf < 0 || crlf < lf) ? (crlf, 4) : (lf, 2);
        return end < 0 ? wire : [.. wire.AsSpan(0, end + gap), .. "Changed on the way.\r\n"u8, .. wire.AsSpan(end + gap)];
    }

    private static byte[] ToCrlf(byte[] data) =>
        Encoding.Latin1.GetBytes(Encoding.Latin1.GetString(data).Replace("\r\n", "\n").Replace("\n", "\r\n"));
}
