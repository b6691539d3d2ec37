using System.Globalization;
using System.Net;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Postern.EndToEnd.Infrastructure;
using Xunit.Abstractions;

namespace Postern.EndToEnd;

/// <summary>What an operator's monitoring sees of a running node: /metrics moving with real mail, /healthz, refused settings.</summary>
public sealed partial class ObservabilityTests(ITestOutputHelper output) : EndToEndTest(output)
{
    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(10) };

    [Fact]
    public async Task Metrics_count_the_mail_that_went_through_and_pass_promtool()
    {
        var relay = await StartRelayAsync();
        var northwind = await Postern.CreateTenantAsync("northwind", "northwind.test", $"127.0.0.1:{FreePort.Next()}");
        await Postern.WaitForConfigurationLoadedAsync();
        var before = await ScrapeAsync(relay.Config);

        var sent = await relay.SendPlainAsync("alice@contoso.test", "Counted", relay.Contoso.KeyHeader);
        Assert.True(sent.QueueId is not null, sent.ToString());
        await relay.Sink.WaitForMessagesAsync(1, TimeSpan.FromSeconds(30), Diagnostics);
        // Its MTA does not listen: deferred.
        var deferred = await relay.SendPlainAsync("bob@northwind.test", "Deferred", northwind.KeyHeader);
        Assert.True(deferred.QueueId is not null, deferred.ToString());
        var refused = await relay.SendPlainAsync("alice@contoso.test", "No key");
        Assert.True(refused.HasReply("5"), refused.ToString());
        string after = "";
        await Poll.UntilAsync(async () =>
        {
            after = await ScrapeAsync(relay.Config);
            return Sum(after, "postern_messages_delivered_total") > Sum(before, "postern_messages_delivered_total")
                && Sum(after, "postern_messages_deferred_total") > Sum(before, "postern_messages_deferred_total");
        }, TimeSpan.FromSeconds(20), "the delivered counter to move", () => after);

        Assert.Equal(1, Sum(after, "postern_messages_received_total", "direction=\"inbound\"", "tenant=\"contoso\"", "verdict=\"deliver\"")
            - Sum(before, "postern_messages_received_total", "direction=\"inbound\"", "tenant=\"contoso\"", "verdict=\"deliver\""));
        Assert.True(Sum(after, "postern_messages_refused_total") > Sum(before, "postern_messages_refused_total"), after);
        Assert.True(Sum(after, "postern_delivery_attempts_total", "outcome=\"delivered\"") >= 1, after);
        Assert.True(Sum(after, "postern_scan_duration_seconds_count", "engine=\"attachments\"") >= 1, after);
        Assert.True(Sum(after, "postern_delivery_duration_seconds_count") >= 1, after);
        Assert.True(Sum(after, "postern_smtp_sessions_total", "listener=\"plain\"") >= 2, after);
        Assert.Equal(1, Sum(after, "postern_build_info"));
        Assert.Contains("postern_queue_messages{", after);
        // Never an address in a label.
        Assert.DoesNotContain("@", string.Join("\n", after.Split('\n').Where(l => !l.StartsWith('#'))));

        var check = await ExternalCommand.RunAsync("promtool", ["check", "metrics"], TimeSpan.FromSeconds(30), stdin: after);
        Assert.True(check.ExitCode == 0, check.ToString());

        // Every metric the dashboard and the alerts read is one this node exports (families appear with their first
        // event, except these two, which nothing here makes happen).
        string[] eventOnly = ["postern_messages_failed_total", "postern_messages_quarantined_total"];
        var exported = after.Split('\n').Where(l => l.StartsWith("# TYPE ", StringComparison.Ordinal)).Select(l => l.Split(' ')[2]).ToHashSet();
        var alerts = await File.ReadAllTextAsync(Path.Combine(ScanSamples.RepositoryRoot, "deploy", "prometheus", "postern-alerts.yml"));
        var read = DeployTests.DashboardExpressions().Append(alerts).SelectMany(DeployTests.MetricNames).Distinct();
        foreach (var name in read.Except(eventOnly))
            Assert.True(exported.Contains(name) || exported.Contains(Regex.Replace(name, "_(bucket|count|sum)$", "")), $"{name} is not exported:\n{after}");
    }

    [Fact]
    public async Task Ready_names_each_check_and_turns_unhealthy_while_clamd_is_down()
    {
        var clamd = Own(await ClamdDaemon.StartAsync(Directory));
        Postern.UseClamAv(clamd.UnixEndpoint);
        var relay = await StartRelayAsync();

        var (status, body) = await GetAsync(relay.Config, "healthz/ready");
        Assert.True(status == HttpStatusCode.OK, body.ToJsonString());
        Assert.Equal("healthy", (string?)body["status"]);
        foreach (var check in new[] { "database", "spool", "engines", "listeners", "queue" })
            Assert.Equal("healthy", (string?)body["checks"]![check]!["status"]);
        Assert.Contains("clamav", (string?)body["checks"]!["engines"]!["description"]);

        await clamd.StopAsync();
        (status, body) = await GetAsync(relay.Config, "healthz/ready");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, status);
        Assert.Equal("unhealthy", (string?)body["checks"]!["engines"]!["status"]);
        Assert.Contains("clamav does not answer", (string?)body["checks"]!["engines"]!["description"]);
        var (liveStatus, _) = await GetAsync(relay.Config, "healthz/live");
        Assert.Equal(HttpStatusCode.OK, liveStatus);

        await clamd.StartAsync();
        await Poll.UntilAsync(async () => (await GetAsync(relay.Config, "healthz/ready")).Status == HttpStatusCode.OK, TimeSpan.FromSeconds(20),
            "ready again once clamd is back", Diagnostics);
    }

    [Theory]
    [InlineData("--Postern:Smtp:MaxRecipients=lots", "Postern:Smtp:MaxRecipients", "lots")]
    [InlineData("--Postern:Http:EndPoint=nowhere", "Postern:Http:EndPoint", "nowhere")]
    [InlineData("--Postern:Delivery:MaxConnectionsPerDestination=0", "Postern:Delivery:MaxConnectionsPerDestination", "0")]
    public async Task A_bad_setting_stops_the_start_with_one_line_naming_it_and_its_value(string setting, string name, string value)
    {
        var result = await Postern.RunCliAsync("serve", "--smtp", $"127.0.0.1:{FreePort.Next()}", $"--Postern:Http:EndPoint=127.0.0.1:{FreePort.Next()}", setting);

        Assert.Equal(1, result.ExitCode);
        var line = Assert.Single(result.StdErr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Contains(name, line);
        Assert.Contains($"'{value}'", line.Replace("\"", "'"));
    }

    [Fact]
    public async Task The_SMTP_limits_come_from_the_settings()
    {
        var config = new PosternConfig
        {
            Listeners = [new PosternListener("plain", FreePort.Next(), RequireTls: false)],
            Extra = new JsonObject { ["Smtp"] = new JsonObject { ["MaxErrors"] = 2, ["MaxCommandLineLength"] = 600 } },
        };
        await Postern.StartServeAsync(config);
        await using var client = await RawSmtpClient.ConnectAsync(config.First.Port);
        await client.HelloAsync();

        // A 550-character command fits the configured 600 (the default 512 would refuse it as too long).
        var longCommand = await client.CommandAsync("NOOP " + new string('x', 540));
        Assert.True(longCommand.Is(250, "2.0.0"), longCommand.ToString());
        var first = await client.CommandAsync("BOGUS");
        Assert.Equal(500, first.Code);
        var second = await client.CommandAsync("BOGUS");
        Assert.Equal(500, second.Code);
        // The second mistake is one too many with MaxErrors 2 (the default is 20): the server says so and closes.
        var closing = await client.ReadResponseAsync();
        Assert.True(closing.Is(421, "4.7.0"), closing.ToString());
    }

    [Fact]
    public async Task With_LogFormat_json_every_log_line_is_a_JSON_object_for_log_shippers()
    {
        var config = new PosternConfig
        {
            Listeners = [new PosternListener("plain", FreePort.Next(), RequireTls: false)],
            Extra = new JsonObject { ["LogFormat"] = "json" },
        };
        await Postern.StartServeAsync(config);
        await Postern.StopAsync();

        var lines = Postern.ReadLog().Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(l => !l.StartsWith("===", StringComparison.Ordinal)).ToList();
        Assert.NotEmpty(lines);
        foreach (var line in lines)
        {
            var entry = JsonNode.Parse(line)!;
            Assert.NotNull((string?)entry["Category"]);
            Assert.NotNull((string?)entry["Message"]);
        }
        Assert.Contains(lines, l => l.Contains("Postern ready", StringComparison.Ordinal));
    }

    private static async Task<string> ScrapeAsync(PosternConfig config) => await Http.GetStringAsync(new Uri(config.HttpBase, "metrics"));

    private static async Task<(HttpStatusCode Status, JsonNode Body)> GetAsync(PosternConfig config, string path)
    {
        using var response = await Http.GetAsync(new Uri(config.HttpBase, path));
        return (response.StatusCode, JsonNode.Parse(await response.Content.ReadAsStringAsync())!);
    }

    /// <summary>The sum of every sample of <paramref name="metric"/> whose labels contain each of <paramref name="labels"/>.</summary>
    private static double Sum(string scrape, string metric, params string[] labels) =>
        scrape.Split('\n')
            .Select(l => Sample().Match(l))
            .Where(m => m.Success && m.Groups["name"].Value == metric && labels.All(label => m.Groups["labels"].Value.Contains(label, StringComparison.Ordinal)))
            .Sum(m => double.Parse(m.Groups["value"].Value, CultureInfo.InvariantCulture));

    [GeneratedRegex(@"^(?<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?<labels>[^}]*)\})?\s+(?<value>[-+0-9.eE]+|NaN|\+Inf)(?:\s+\d+)?$")]
    private static partial Regex Sample();
}
