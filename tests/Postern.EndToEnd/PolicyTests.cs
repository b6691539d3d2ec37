using Postern.EndToEnd.Infrastructure;
using Xunit.Abstractions;

namespace Postern.EndToEnd;

/// <summary>
/// Tenant policy rules through the command line, against a running server: a rule added with
/// `postern policy add` decides per recipient, on the next message, without a restart.
/// </summary>
public sealed class PolicyTests(ITestOutputHelper output) : EndToEndTest(output)
{
    [Fact]
    public async Task A_per_recipient_rule_added_while_serving_tags_only_that_recipients_copy()
    {
        var relay = await StartRelayAsync();
        var pid = Postern.ServerPid;
        var reloads = Postern.ReadLog().Occurrences("Configuration reloaded");

        // A wrong true type is refused in one line naming it, and saves nothing.
        var wrong = await Postern.RunCliAsync("policy", "add", relay.Contoso.Name, "--name", "typo", "--attachment-type", "pe,exe", "--action", "reject");
        Assert.False(wrong.Succeeded, wrong.ToString());
        Assert.Single(wrong.StdErr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Contains("--attachment-type 'exe' is not a file type", wrong.StdErr);

        var add = (await Postern.RunCliAsync("policy", "add", relay.Contoso.Name, "--name", "tag-bob", "--priority", "10",
            "--recipient", "bob@contoso.test", "--action", "tag", "--subject-tag", "[X]")).EnsureSuccess();
        Assert.Contains("Rule 'tag-bob' (priority 10) saved", add.StdOut);
        var list = (await Postern.RunCliAsync("policy", "list", relay.Contoso.Name)).EnsureSuccess().StdOut;
        Assert.Contains("tag-bob", list);
        Assert.DoesNotContain("typo", list);
        await Poll.UntilAsync(() => Postern.ReadLog().Occurrences("Configuration reloaded") > reloads, TimeSpan.FromSeconds(15),
            "the server to reload after policy add", Diagnostics);

        var message = ScanSamples.TextMessage(relay.Contoso.KeyHeader, RelayHarness.ExternalSender, "alice@contoso.test", "Team lunch", "Friday at noon?");
        var sent = await SmtpSubmission.SendAsync(relay.PlainPort, RelayHarness.ExternalSender, ["alice@contoso.test", "bob@contoso.test"], message);
        Assert.True(sent.QueueId is not null, sent.ToString());

        // Alice's copy keeps the queue id the client was told; Bob's, decided by another rule, has its own.
        var alice = await TraceQuery.WaitForAsync(Postern, sent.QueueId!, e => e.State == "delivered", diagnostics: Diagnostics);
        Assert.Equal(["alice@contoso.test"], alice.Recipients);
        TraceEntry? bob = null;
        await Poll.UntilAsync(async () => (bob = (await TraceQuery.ListAsync(Postern))
            .FirstOrDefault(e => e.Recipients.SequenceEqual(["bob@contoso.test"]) && e.State == "delivered")) is not null,
            TimeSpan.FromSeconds(30), "a delivered trace record for bob", Diagnostics);
        Assert.NotEqual(sent.QueueId, bob!.QueueId);
        Assert.Contains("tag-bob", bob.Verdict);
        Assert.Equal(2, (await TraceQuery.ListAsync(Postern)).Count);

        var copies = await relay.Sink.WaitForMessagesAsync(2, TimeSpan.FromSeconds(30), Diagnostics);
        var bobs = Assert.Single(copies, m => m.RecipientArgs.SequenceEqual(["<bob@contoso.test>"]));
        var alices = Assert.Single(copies, m => m.RecipientArgs.SequenceEqual(["<alice@contoso.test>"]));
        Assert.Equal("[X] Team lunch", bobs.Mail.Header("Subject"));
        Assert.Equal("tag (rule tag-bob)", bobs.Mail.Header("X-Postern-Verdict"));
        Assert.Equal("Team lunch", alices.Mail.Header("Subject"));
        Assert.Equal("deliver", alices.Mail.Header("X-Postern-Verdict"));
        Assert.Equal(pid, Postern.ServerPid);
    }
}
