using System.Text;
using Postern.EndToEnd.Infrastructure;
using Xunit.Abstractions;

namespace Postern.EndToEnd;

/// <summary>
/// Postern's ARC seal on mail returned to Microsoft 365 and its DKIM signature on outbound mail, as
/// delivered, verify with an independent implementation: Debian's python3-dkim, offline, with the
/// public keys Postern tells the operator to publish.
/// </summary>
public sealed class ScanningSignatureTests(ITestOutputHelper output) : EndToEndTest(output)
{
    private const string ArcKeyName = "postern1._domainkey.arc.postern.example";

    [Fact]
    public async Task Arc_seal_on_an_inbound_message_verifies_with_python3_dkim()
    {
        var relay = await StartRelayAsync();
        var message = ScanSamples.TextMessage(relay.Contoso.KeyHeader, RelayHarness.ExternalSender, "alice@contoso.test", "sealed inbound",
            "Hello Alice,\n\nthe quarterly figures are attached to the portal.\n\n-- \nSender\n");
        var sent = await SmtpSubmission.SendAsync(relay.PlainPort, RelayHarness.ExternalSender, ["alice@contoso.test"], message);
        Assert.True(sent.QueueId is not null, sent.ToString());
        var delivered = Assert.Single(await relay.Sink.WaitForMessagesAsync(1, TimeSpan.FromSeconds(30), Diagnostics));
        Assert.Equal(["ARC-Seal", "ARC-Message-Signature", "ARC-Authentication-Results"], delivered.Mail.HeaderFields.Take(3).Select(f => f.Name));

        // The key as the server stores it, and the record it logged on first start for the operator to publish.
        var pem = await File.ReadAllTextAsync(Path.Combine(Postern.DataDirectory, "keys", "arc-postern1.pem"));
        var record = PythonDkim.TxtRecordForPrivateKeyPem(pem);
        var logged = PythonDkim.ParseTxtLine(Postern.ReadLog()[Postern.ReadLog().IndexOf("Made an ARC sealing key", StringComparison.Ordinal)..]);
        Assert.Equal((ArcKeyName, record), logged);
        var keys = new Dictionary<string, string> { [ArcKeyName] = record };

        var raw = SinkContent.ReadMessageCrlf(delivered);
        var verified = await PythonDkim.VerifyArcAsync(Directory, raw, keys);
        Assert.True(verified.Verdict == "pass", $"python3-dkim arc_verify: {verified}\n{Encoding.UTF8.GetString(raw)}");

        // Not vacuous: the same message with one body byte changed fails.
        var tampered = Tamper(raw, "quarterly", "quarterlY");
        var failed = await PythonDkim.VerifyArcAsync(Directory, tampered, keys);
        Assert.True(failed.Verdict == "fail", $"a tampered message must fail ARC validation: {failed}");
    }

    [Fact]
    public async Task Dkim_signature_on_an_outbound_message_verifies_with_python3_dkim()
    {
        var relay = await StartRelayAsync();
        var key = await RotateAsync();
        var show = (await Postern.RunCliAsync("dkim", "show", "contoso", "contoso.test")).EnsureSuccess();
        Assert.Equal(key with { State = "pending" }, Assert.Single(DkimShow.Parse(show.StdOut)));
        await SwitchAsync();
        var published = key.TenantTxt;

        // A tenant user writes to the Internet: Postern delivers by MX (the test DNS points every MX at the sink).
        var message = ScanSamples.TextMessage(relay.Contoso.KeyHeader, "ceo@contoso.test", "partner@external.test", "signed outbound",
            "Dear partner,\n\nplease find the contract terms below.\n\nRegards\n");
        var sent = await SmtpSubmission.SendAsync(relay.PlainPort, "ceo@contoso.test", ["partner@external.test"], message);
        Assert.True(sent.QueueId is not null, sent.ToString());
        var delivered = Assert.Single(await relay.Sink.WaitForMessagesAsync(1, TimeSpan.FromSeconds(30), Diagnostics));
        Assert.Equal(["<partner@external.test>"], delivered.RecipientArgs);
        Assert.False(delivered.Mail.HasHeader("X-Postern-Loop"), "mail to the Internet must not carry the loop token");
        var signature = delivered.Mail.Header("DKIM-Signature");
        Assert.True(signature is not null, delivered.Mail.HeaderSection);
        Assert.Contains("d=contoso.test", signature);
        Assert.Contains($"s={key.Selector};", signature.Replace(" ", ""));

        var keys = new Dictionary<string, string> { [published.Name] = published.Value };
        var raw = SinkContent.ReadMessageCrlf(delivered);
        var verified = await PythonDkim.VerifyDkimAsync(Directory, raw, keys);
        Assert.True(verified.Verdict == "pass", $"python3-dkim verify: {verified}\n{Encoding.UTF8.GetString(raw)}");

        var failed = await PythonDkim.VerifyDkimAsync(Directory, Tamper(raw, "contract terms", "contract termz"), keys);
        Assert.True(failed.Verdict == "fail", $"a tampered message must fail DKIM verification: {failed}");
    }

    [Fact]
    public async Task The_first_key_does_not_sign_until_the_switch()
    {
        var relay = await StartRelayAsync();
        await RotateAsync();

        var sent = await SmtpSubmission.SendAsync(relay.PlainPort, "ceo@contoso.test", ["partner@external.test"],
            ScanSamples.TextMessage(relay.Contoso.KeyHeader, "ceo@contoso.test", "partner@external.test", "before the first switch", "Hello\n"));
        Assert.True(sent.QueueId is not null, sent.ToString());
        var delivered = Assert.Single(await relay.Sink.WaitForMessagesAsync(1, TimeSpan.FromSeconds(30), Diagnostics));
        Assert.True(delivered.Mail.Header("DKIM-Signature") is null, "a pending key must not sign:\n" + delivered.Mail.HeaderSection);
    }

    [Fact]
    public async Task After_rotate_outbound_mail_keeps_the_old_selector_until_the_switch_then_takes_the_new_one()
    {
        var relay = await StartRelayAsync();
        var first = await RotateAsync();
        await SwitchAsync();
        var second = await RotateAsync();
        Assert.NotEqual(first.Selector, second.Selector);
        Assert.NotEqual(first.TenantTxt.Value, second.TenantTxt.Value);

        // show reads the configuration file the server runs with; the signing key first, then the pending one, each with its records.
        var show = (await Postern.RunCliAsync("dkim", "show", "contoso", "contoso.test", "--config", Postern.ConfigPath!)).EnsureSuccess();
        Assert.Equal([first with { State = "active" }, second], DkimShow.Parse(show.StdOut));

        // The server has reloaded since rotate, and still signs with the old key: the new record may not be in DNS yet.
        var before = await SendOutboundAsync(relay, "signed between rotate and switch", 1);
        Assert.Contains($"s={first.Selector};", before.Signature);
        await AssertVerifiesOnlyWithAsync(before.Raw, first, second);

        var switched = await SwitchAsync();
        Assert.Contains($"signed with selector {second.Selector} from now on", switched.StdOut);
        Assert.Contains($"Selector {first.Selector} is retired", switched.StdOut);
        show = (await Postern.RunCliAsync("dkim", "show", "contoso", "contoso.test", "--config", Postern.ConfigPath!)).EnsureSuccess();
        Assert.Equal([second with { State = "active" }, first with { State = "retired" }], DkimShow.Parse(show.StdOut));

        var after = await SendOutboundAsync(relay, "signed after the switch", 2);
        Assert.Contains($"s={second.Selector};", after.Signature);
        await AssertVerifiesOnlyWithAsync(after.Raw, second, first);
    }

    /// <summary>`dkim rotate`, then waits until the running server has reloaded, so a message sent next would see the change.</summary>
    private async Task<DkimShowKey> RotateAsync()
    {
        var reloads = Postern.ReadLog().Occurrences("Configuration reloaded");
        var rotate = (await Postern.RunCliAsync("dkim", "rotate", "contoso", "contoso.test")).EnsureSuccess();
        await Poll.UntilAsync(() => Postern.ReadLog().Occurrences("Configuration reloaded") > reloads, TimeSpan.FromSeconds(15),
            "the server to reload after dkim rotate", Diagnostics);
        var key = Assert.Single(DkimShow.Parse(rotate.StdOut));
        Assert.Equal("pending", key.State);
        Assert.Contains("then run: postern dkim rotate contoso contoso.test --switch", rotate.StdOut);
        return key;
    }

    /// <summary>`dkim rotate --switch`, then waits until the running server has reloaded, so the next message uses the new key.</summary>
    private async Task<CommandResult> SwitchAsync()
    {
        var reloads = Postern.ReadLog().Occurrences("Configuration reloaded");
        var switched = (await Postern.RunCliAsync("dkim", "rotate", "contoso", "contoso.test", "--switch")).EnsureSuccess();
        await Poll.UntilAsync(() => Postern.ReadLog().Occurrences("Configuration reloaded") > reloads, TimeSpan.FromSeconds(15),
            "the server to reload after dkim rotate --switch", Diagnostics);
        return switched;
    }

    /// <summary>Sends one message to the Internet and returns the delivered copy's DKIM-Signature (spaces removed) and bytes.</summary>
    private async Task<(string Signature, byte[] Raw)> SendOutboundAsync(RelayHarness relay, string subject, int deliveredSoFar)
    {
        var message = ScanSamples.TextMessage(relay.Contoso.KeyHeader, "ceo@contoso.test", "partner@external.test", subject,
            "Dear partner,\n\nthe new contract terms follow.\n\nRegards\n");
        var sent = await SmtpSubmission.SendAsync(relay.PlainPort, "ceo@contoso.test", ["partner@external.test"], message);
        Assert.True(sent.QueueId is not null, sent.ToString());
        var delivered = Assert.Single(await relay.Sink.WaitForMessagesAsync(deliveredSoFar, TimeSpan.FromSeconds(30), Diagnostics),
            m => m.Mail.Header("Subject")?.Trim() == subject);
        var signature = delivered.Mail.Header("DKIM-Signature");
        Assert.True(signature is not null, delivered.Mail.HeaderSection);
        return (signature.Replace(" ", ""), SinkContent.ReadMessageCrlf(delivered));
    }

    /// <summary>python3-dkim passes the message with the signing key's record and fails it with the other key's record at the same name.</summary>
    private async Task AssertVerifiesOnlyWithAsync(byte[] raw, DkimShowKey signing, DkimShowKey other)
    {
        var name = signing.TenantTxt.Name;
        var pass = await PythonDkim.VerifyDkimAsync(Directory, raw, new Dictionary<string, string> { [name] = signing.TenantTxt.Value });
        Assert.True(pass.Verdict == "pass", $"python3-dkim verify with selector {signing.Selector}'s key: {pass}\n{Encoding.UTF8.GetString(raw)}");
        var fail = await PythonDkim.VerifyDkimAsync(Directory, raw, new Dictionary<string, string> { [name] = other.TenantTxt.Value });
        Assert.True(fail.Verdict == "fail", $"selector {other.Selector}'s key must not verify this message: {fail}");
    }

    private static byte[] Tamper(byte[] message, string from, string to)
    {
        var text = Encoding.Latin1.GetString(message);
        var at = text.IndexOf(from, text.IndexOf("\r\n\r\n", StringComparison.Ordinal), StringComparison.Ordinal);
        Assert.True(at > 0, $"'{from}' is not in the body");
        return Encoding.Latin1.GetBytes(text[..at] + to + text[(at + from.Length)..]);
    }

}
