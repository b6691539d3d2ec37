using System.Globalization;
using System.Text;
using Postern.EndToEnd.Infrastructure;
using Xunit.Abstractions;

namespace Postern.EndToEnd;

/// <summary>
/// Postern is never an open relay. Every trick below is tried by a sender that even holds contoso's
/// relay key (the worst case: the key only proves which tenant a message belongs to); each must be
/// refused, and nothing may reach the sink, which stands in for every next hop (tenant MTAs and,
/// through the catch-all DNS, every other domain's MX).
/// </summary>
public sealed class OpenRelayTests(ITestOutputHelper output) : EndToEndTest(output)
{
    /// <summary>One attempt: envelope sender, recipients (all but the last are legitimate set-up), SMTPUTF8.</summary>
    public sealed record RelayTrick(string Name, string Sender, string[] Recipients, bool SmtpUtf8 = false);

    private const string Attacker = "attacker@evil.test";

    public static IReadOnlyList<RelayTrick> Tricks()
    {
        var lookalike = "c\u03BFntoso.test"; // Greek small omicron for the first 'o'
        var punycode = new IdnMapping().GetAscii(lookalike);
        return
        [
            new("foreign domain", Attacker, ["victim@evil.test"]),
            new("foreign domain in upper case", Attacker, ["VICTIM@EVIL.TEST"]),
            new("foreign domain in mixed case that contains the tenant domain", Attacker, ["victim@EvilContoso.Test"]),
            new("foreign domain ending with the tenant domain string", Attacker, ["victim@evilcontoso.test"]),
            new("tenant domain as a prefix of a foreign domain", Attacker, ["victim@contoso.test.evil.test"]),
            new("subdomain of a tenant domain", Attacker, ["victim@mail.contoso.test"]),
            new("foreign domain with trailing dot", Attacker, ["victim@evil.test."]),
            new("source route through the tenant domain", Attacker, ["@contoso.test:victim@evil.test"]),
            new("multi-hop source route", Attacker, ["@contoso.test,@mx.contoso.test:victim@evil.test"]),
            new("percent hack at the tenant domain", Attacker, ["victim%evil.test@contoso.test"]),
            new("percent hack without a domain", Attacker, ["victim%evil.test"]),
            new("bang path at the tenant domain", Attacker, ["evil.test!victim@contoso.test"]),
            new("bang path without a domain", Attacker, ["evil.test!victim"]),
            new("quoted local part holding a foreign address", Attacker, ["\"victim@evil.test\"@contoso.test"]),
            new("quoted local part holding a percent hack", Attacker, ["\"victim%evil.test\"@contoso.test"]),
            new("two @, tenant domain last", Attacker, ["victim@evil.test@contoso.test"]),
            new("two @, foreign domain last", Attacker, ["victim@contoso.test@evil.test"]),
            new("IPv4 address literal", Attacker, ["victim@[127.0.0.1]"]),
            new("IPv6 address literal", Attacker, ["victim@[IPv6:::1]"]),
            new("bare IPv4 address as domain", Attacker, ["victim@127.0.0.1"]),
            new("localhost", Attacker, ["victim@localhost"]),
            new("Unicode look-alike of the tenant domain (Greek omicron)", Attacker, ["victim@" + lookalike], SmtpUtf8: true),
            new("Unicode look-alike of the tenant domain (Cyrillic ie)", Attacker, ["victim@contoso.t\u0435st"], SmtpUtf8: true),
            new("punycode of the look-alike", Attacker, ["victim@" + punycode]),
            new("Unicode local part at a foreign domain", Attacker, ["v\u00EFctim@evil.test"], SmtpUtf8: true),
            new("null sender to a foreign domain", "", ["victim@evil.test"]),
            new("sender at a look-alike of the tenant domain", "ceo@" + lookalike, ["victim@evil.test"], SmtpUtf8: true),
            new("sender at a subdomain of the tenant domain", "ceo@mail.contoso.test", ["victim@evil.test"]),
            new("sender with a source route through the tenant domain", "@contoso.test:ceo@evil.test", ["victim@evil.test"]),
            new("sender with the tenant address quoted in a foreign local part", "\"ceo@contoso.test\"@evil.test", ["victim@evil.test"]),
            new("foreign recipient after an accepted tenant recipient", Attacker, ["alice@contoso.test", "victim@evil.test"]),
            new("other tenant's domain with contoso's key", Attacker, ["victim@fabrikam.test"]),
        ];
    }

    [Fact]
    public async Task Refuses_every_open_relay_trick_and_relays_nothing()
    {
        var relay = await StartRelayAsync();
        var tricks = Tricks();
        Assert.True(tricks.Count >= 20);

        var outcomes = new List<(RelayTrick Trick, bool Refused, string Transcript)>();
        foreach (var trick in tricks)
            outcomes.Add(await TryAsync(relay, trick));

        foreach (var (trick, refused, transcript) in outcomes)
            Output.WriteLine($"{(refused ? "refused " : "ACCEPTED")}  {trick.Name}: {transcript}");

        // The control: a legitimate message reaches the sink; when it is there, nothing else may be.
        var control = await relay.SendPlainAsync("alice@contoso.test", "control message", relay.Contoso.KeyHeader);
        Assert.True(control.QueueId is not null, control.ToString());
        await relay.Sink.WaitForMessagesAsync(1, TimeSpan.FromSeconds(30), Diagnostics);

        var accepted = outcomes.Where(o => !o.Refused).Select(o => $"{o.Trick.Name}: {o.Transcript}").ToList();
        Assert.True(accepted.Count == 0, "not refused:\n" + string.Join("\n", accepted));
        var delivered = relay.Sink.Messages();
        Assert.True(delivered.Count == 1, "the sink received more than the control message:\n" +
            string.Join("\n---\n", delivered.Select(m => $"{m.MailFromArgs} → {string.Join(", ", m.RecipientArgs)}\n{m.Mail.HeaderSection}")));
        Assert.Equal("control message", delivered[0].Mail.Header("Subject"));
    }

    /// <summary>
    /// Runs one trick on a fresh connection. Refused means a 5xx to MAIL, to the last RCPT or at end of
    /// DATA (which is sent with contoso's key whenever the last RCPT was accepted), or the server closing.
    /// </summary>
    private static async Task<(RelayTrick, bool, string)> TryAsync(RelayHarness relay, RelayTrick trick)
    {
        var log = new StringBuilder();
        await using var client = await RawSmtpClient.ConnectAsync(relay.PlainPort);
        try
        {
            await client.HelloAsync();
            var mail = await client.CommandAsync($"MAIL FROM:<{trick.Sender}>{(trick.SmtpUtf8 ? " SMTPUTF8" : "")}");
            log.Append($"MAIL {mail} | ");
            if (!mail.IsPositive)
                return (trick, mail.IsPermanentFailure, log.ToString());
            SmtpResponse rcpt = mail;
            foreach (var recipient in trick.Recipients)
            {
                rcpt = await client.CommandAsync($"RCPT TO:<{recipient}>");
                log.Append($"RCPT <{recipient}> {rcpt} | ");
            }
            if (!rcpt.IsPositive)
                return (trick, rcpt.IsPermanentFailure, log.ToString());
            var data = await client.DataAsync(
                $"{relay.Contoso.KeyHeader}\nFrom: <{trick.Sender}>\nTo: <{trick.Recipients[^1]}>\nSubject: relay trick: {trick.Name}\n\nrelay me\n");
            log.Append($"DATA {data}");
            return (trick, data.IsPermanentFailure, log.ToString());
        }
        catch (IOException e)
        {
            log.Append($"connection closed ({e.Message})");
            return (trick, true, log.ToString());
        }
    }
}
