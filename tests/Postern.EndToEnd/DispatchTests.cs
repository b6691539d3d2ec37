using System.Globalization;
using System.Text.RegularExpressions;
using Microsoft.Data.Sqlite;
using Postern.EndToEnd.Infrastructure;
using Xunit.Abstractions;

namespace Postern.EndToEnd;

/// <summary>
/// One message, three verdicts (Alice: deliver, Bob: quarantine, Carol: reject, so a DSN to the sender): the client
/// gets 250 once the message is on disk, and every part is handed on exactly once — also when the quarantine fails
/// half-way through, and when the process is killed between two parts.
/// </summary>
public sealed class DispatchTests(ITestOutputHelper output) : EndToEndTest(output)
{
    private const string Sender = "ceo@contoso.test";
    private static readonly string[] Recipients = ["alice@contoso.test", "bob@contoso.test", "carol@contoso.test"];

    [Fact]
    public async Task A_quarantine_refusing_the_insert_after_a_part_was_spooled_still_answers_250_and_nothing_is_lost_or_doubled_once_it_clears()
    {
        var relay = await StartRelayAsync();
        var queueId = await SendWhileTheQuarantineRefusesAsync(relay);
        await relay.Sink.WaitForMessagesAsync(1, TimeSpan.FromSeconds(30), Diagnostics);
        Assert.DoesNotContain(queueId, (await Postern.RunCliAsync("quarantine", "list")).EnsureSuccess().StdOut);
        Assert.Empty(await QuarantinedAsync());

        Execute("DROP TRIGGER refuse_quarantine;");
        await AssertEachPartOnceAsync(relay, queueId);
    }

    [Fact]
    public async Task A_kill_9_between_two_parts_hands_each_part_on_exactly_once_after_the_restart()
    {
        var relay = await StartRelayAsync();
        // Bob's part keeps failing after Alice's copy was spooled: the record stays between two parts until the kill.
        var queueId = await SendWhileTheQuarantineRefusesAsync(relay);
        Postern.Kill();
        Assert.Empty(await QuarantinedAsync());

        Execute("DROP TRIGGER refuse_quarantine;");
        await Postern.StartServeAsync(relay.Config);
        await AssertEachPartOnceAsync(relay, queueId);
    }

    /// <summary>
    /// The fault of the issue, made from outside: SQLite refuses the quarantine insert (until the trigger is dropped),
    /// so the message is answered 250 and its quarantine part fails after Alice's copy was spooled. Returns its queue id.
    /// </summary>
    private async Task<string> SendWhileTheQuarantineRefusesAsync(RelayHarness relay)
    {
        await AddRulesAsync(relay);
        Execute("CREATE TRIGGER refuse_quarantine BEFORE INSERT ON quarantine BEGIN SELECT RAISE(ABORT, 'injected fault'); END;");
        var sent = await SendAsync(relay);
        Assert.True(sent.QueueId is not null, sent.ToString());
        await Poll.UntilAsync(() => Postern.ReadLog().Contains("could not finish the dispatch of an acknowledged message"), TimeSpan.FromSeconds(30),
            "the quarantine part to fail", Diagnostics);
        return sent.QueueId!;
    }

    private async Task AddRulesAsync(RelayHarness relay)
    {
        AddDiagnostics(() => "--- trace ---\n" + Postern.RunCli("trace", "list", "--json").StdOut);
        (await Postern.RunCliAsync("policy", "add", relay.Contoso.Name, "--name", "hold-bob", "--priority", "10",
            "--recipient", "bob@contoso.test", "--action", "quarantine")).EnsureSuccess();
        (await Postern.RunCliAsync("policy", "add", relay.Contoso.Name, "--name", "refuse-carol", "--priority", "11",
            "--recipient", "carol@contoso.test", "--action", "reject")).EnsureSuccess();
        // Both rules in force: the server has loaded the configuration generation the second add made.
        var generation = Convert.ToInt64(Scalar("SELECT generation FROM config_generation WHERE id = 1"), CultureInfo.InvariantCulture);
        await Poll.UntilAsync(() => Regex.Matches(Postern.ReadLog(), @"Configuration reloaded \(generation (\d+),")
                .Any(m => long.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture) >= generation),
            TimeSpan.FromSeconds(15), $"the server to load configuration generation {generation}", Diagnostics);
    }

    private Task<SubmissionResult> SendAsync(RelayHarness relay) =>
        SmtpSubmission.SendAsync(relay.PlainPort, Sender, Recipients,
            ScanSamples.TextMessage(relay.Contoso.KeyHeader, Sender, "alice@contoso.test", "Quarterly figures", "Numbers attached.\n"));

    /// <summary>Alice's copy and the DSN for Carol at the sink, Bob's in the quarantine: one of each, and only once everything is there.</summary>
    private async Task AssertEachPartOnceAsync(RelayHarness relay, string queueId)
    {
        await Poll.UntilAsync(async () => (await QuarantinedAsync()).Count > 0, TimeSpan.FromSeconds(60), "Bob's part in the quarantine", Diagnostics);
        var messages = await relay.Sink.WaitForMessagesAsync(2, TimeSpan.FromSeconds(60), Diagnostics);

        var alice = Assert.Single(messages, m => m.RecipientArgs.SequenceEqual(["<alice@contoso.test>"]));
        Assert.Equal("Quarterly figures", alice.Mail.Header("Subject"));
        Assert.Equal(queueId, alice.Mail.FirstReceivedId());
        Assert.False(alice.Mail.HasHeader("X-Postern-Key"));
        var dsn = Assert.Single(messages, m => m.RecipientArgs.SequenceEqual([$"<{Sender}>"]));
        Assert.Contains("carol@contoso.test", dsn.Mail.Body);
        Assert.DoesNotContain(messages, m => m.RecipientArgs.Any(r => r.Contains("bob") || r.Contains("carol")));
        Assert.Equal(2, messages.Count);

        var held = Assert.Single(await QuarantinedAsync());
        Assert.Equal("bob@contoso.test", held);
        var list = (await Postern.RunCliAsync("quarantine", "list")).EnsureSuccess().StdOut;
        Assert.Contains("hold-bob", list);
    }

    /// <summary>The recipients of every quarantine entry, read from the database.</summary>
    private Task<List<string>> QuarantinedAsync()
    {
        var recipients = new List<string>();
        using var connection = Open();
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT json_extract(envelope, '$.recipients[0].address') FROM quarantine";
        using var reader = command.ExecuteReader();
        while (reader.Read())
            recipients.Add(reader.GetString(0));
        return Task.FromResult(recipients);
    }

    private void Execute(string sql) => Scalar(sql);

    private object? Scalar(string sql)
    {
        using var connection = Open();
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        return command.ExecuteScalar();
    }

    private SqliteConnection Open()
    {
        var connection = new SqliteConnection($"Data Source={Path.Combine(Postern.DataDirectory, "postern.db")};Pooling=False");
        connection.Open();
        return connection;
    }
}
