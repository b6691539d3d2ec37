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
        var reloads = Postern.ReadLog().Occurrences("Configuration reloaded");
        var rotate = (await Postern.RunCliAsync("dkim", "rotate", "contoso", "contoso.test")).EnsureSuccess();
        var published = PythonDkim.ParseTxtLine(rotate.StdOut);
        Assert.True(published is not null, rotate.ToString());
        var show = (await Postern.RunCliAsync("dkim", "show", "contoso", "contoso.test")).EnsureSuccess();
        Assert.Equal(published, PythonDkim.ParseTxtLine(show.StdOut));
        // The running server picks the new key up with the configuration change.
        await Poll.UntilAsync(() => Postern.ReadLog().Occurrences("Configuration reloaded") > reloads, TimeSpan.FromSeconds(15),
            "the server to reload after dkim rotate", Diagnostics);

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
        Assert.Contains($"s={published!.Value.Name.Split('.')[0]}", signature);

        var keys = new Dictionary<string, string> { [published.Value.Name] = published.Value.Value };
        var raw = SinkContent.ReadMessageCrlf(delivered);
        var verified = await PythonDkim.VerifyDkimAsync(Directory, raw, keys);
        Assert.True(verified.Verdict == "pass", $"python3-dkim verify: {verified}\n{Encoding.UTF8.GetString(raw)}");

        var failed = await PythonDkim.VerifyDkimAsync(Directory, Tamper(raw, "contract terms", "contract termz"), keys);
        Assert.True(failed.Verdict == "fail", $"a tampered message must fail DKIM verification: {failed}");
    }

    [Fact]
    public async Task After_a_second_rotation_outbound_mail_is_signed_with_the_newest_selector_and_the_first_is_listed_retired()
    {
        var relay = await StartRelayAsync();
        var first = await RotateAsync();
        var second = await RotateAsync();
        Assert.NotEqual(first.Selector, second.Selector);
        Assert.NotEqual(first.TenantTxt.Value, second.TenantTxt.Value);

        // show reads the configuration file the server runs with; active first, then the retired key, each with its records.
        var show = (await Postern.RunCliAsync("dkim", "show", "contoso", "contoso.test", "--config", Postern.ConfigPath!)).EnsureSuccess();
        var listed = DkimShow.Parse(show.StdOut);
        Assert.Equal([(second.Selector, "active"), (first.Selector, "retired")], listed.Select(k => (k.Selector, k.State)));
        Assert.Equal(second, listed[0]);
        Assert.Equal(first with { State = "retired" }, listed[1]);

        var message = ScanSamples.TextMessage(relay.Contoso.KeyHeader, "ceo@contoso.test", "partner@external.test", "signed after two rotations",
            "Dear partner,\n\nthe new contract terms follow.\n\nRegards\n");
        var sent = await SmtpSubmission.SendAsync(relay.PlainPort, "ceo@contoso.test", ["partner@external.test"], message);
        Assert.True(sent.QueueId is not null, sent.ToString());
        var delivered = Assert.Single(await relay.Sink.WaitForMessagesAsync(1, TimeSpan.FromSeconds(30), Diagnostics));
        var signature = delivered.Mail.Header("DKIM-Signature");
        Assert.True(signature is not null, delivered.Mail.HeaderSection);
        Assert.Contains($"s={second.Selector};", signature.Replace(" ", ""));

        // It verifies against the newest key only: the retired key's record does not validate it.
        var raw = SinkContent.ReadMessageCrlf(delivered);
        var newest = await PythonDkim.VerifyDkimAsync(Directory, raw, new Dictionary<string, string> { [second.TenantTxt.Name] = second.TenantTxt.Value });
        Assert.True(newest.Verdict == "pass", $"python3-dkim verify with the newest key: {newest}\n{Encoding.UTF8.GetString(raw)}");
        var retired = await PythonDkim.VerifyDkimAsync(Directory, raw, new Dictionary<string, string> { [second.TenantTxt.Name] = first.TenantTxt.Value });
        Assert.True(retired.Verdict == "fail", $"the retired key must not verify mail signed after the rotation: {retired}");
    }

    /// <summary>`dkim rotate`, then waits until the running server has reloaded, so the next message uses the new key.</summary>
    private async Task<DkimShowKey> RotateAsync()
    {
        var reloads = Postern.ReadLog().Occurrences("Configuration reloaded");
        var rotate = (await Postern.RunCliAsync("dkim", "rotate", "contoso", "contoso.test")).EnsureSuccess();
        await Poll.UntilAsync(() => Postern.ReadLog().Occurrences("Configuration reloaded") > reloads, TimeSpan.FromSeconds(15),
            "the server to reload after dkim rotate", Diagnostics);
        var key = Assert.Single(DkimShow.Parse(rotate.StdOut));
        Assert.Equal("active", key.State);
        return key;
    }

    private static byte[] Tamper(byte[] message, string from, string to)
    {
        var text = Encoding.Latin1.GetString(message);
        var at = text.IndexOf(from, text.IndexOf("\r\n\r\n", StringComparison.Ordinal), StringComparison.Ordinal);
        Assert.True(at > 0, $"'{from}' is not in the body");
        return Encoding.Latin1.GetBytes(text[..at] + to + text[(at + from.Length)..]);
    }

}
