using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Postern.EndToEnd.Infrastructure;
using Xunit.Abstractions;

namespace Postern.EndToEnd;

/// <summary>What deploy/ ships, checked with the operators' own tools: systemd-analyze, promtool.</summary>
public sealed partial class DeployTests(ITestOutputHelper output) : EndToEndTest(output)
{
    private static string Deploy => Path.Combine(ScanSamples.RepositoryRoot, "deploy");

    [Fact]
    public async Task The_alert_rules_pass_promtool_check_and_their_unit_tests()
    {
        var check = await ExternalCommand.RunAsync("promtool", ["check", "rules", Path.Combine(Deploy, "prometheus", "postern-alerts.yml")], TimeSpan.FromSeconds(30));
        Assert.True(check.ExitCode == 0, check.ToString());
        var test = await ExternalCommand.RunAsync("promtool", ["test", "rules", Path.Combine(Deploy, "prometheus", "postern-alerts.test.yml")], TimeSpan.FromSeconds(60));
        Assert.True(test.ExitCode == 0, test.ToString());
        Assert.Contains("SUCCESS", test.StdOut + test.StdErr);
    }

    [Fact]
    public async Task Every_dashboard_expression_parses_as_PromQL()
    {
        // promtool parses each expression as a recording rule would ($instance as Grafana would expand "All").
        var rules = new StringBuilder("groups:\n  - name: dashboard\n    rules:\n");
        var expressions = DashboardExpressions();
        Assert.True(expressions.Count >= 12, $"only {expressions.Count} expressions in the dashboard");
        for (var i = 0; i < expressions.Count; i++)
            rules.Append($"      - record: dashboard:expression_{i}\n        expr: '{expressions[i].Replace("$instance", ".*").Replace("'", "''")}'\n");
        var file = Directory.PathOf("dashboard-rules.yml");
        await File.WriteAllTextAsync(file, rules.ToString());

        var check = await ExternalCommand.RunAsync("promtool", ["check", "rules", file], TimeSpan.FromSeconds(30));

        Assert.True(check.ExitCode == 0, check + "\n" + rules);
    }

    [Fact]
    public async Task The_systemd_unit_verifies_with_the_published_binary_in_place_and_not_without_it()
    {
        var root = Directory.Sub("root");
        var units = System.IO.Directory.CreateDirectory(Path.Combine(root, "etc", "systemd", "system")).FullName;
        // The system's own units (targets the unit refers to), symbolic links kept as links.
        System.IO.Directory.CreateDirectory(Path.Combine(root, "usr", "lib", "systemd"));
        (await ExternalCommand.RunAsync("cp", ["-a", "/usr/lib/systemd/system", Path.Combine(root, "usr", "lib", "systemd")], TimeSpan.FromSeconds(60))).EnsureSuccess();
        File.Copy(Path.Combine(Deploy, "postern.service"), Path.Combine(units, "postern.service"));

        var missing = await VerifyAsync(root);
        Assert.NotEqual(0, missing.ExitCode);
        Assert.Contains("/opt/postern/postern", missing.StdOut + missing.StdErr);

        // The apphost the build makes next to postern.dll stands in for the published binary.
        var binary = System.IO.Directory.CreateDirectory(Path.Combine(root, "opt", "postern")).FullName;
        File.Copy(Path.Combine(Path.GetDirectoryName(PosternProcess.DllPath)!, "postern"), Path.Combine(binary, "postern"));
        File.SetUnixFileMode(Path.Combine(binary, "postern"), (UnixFileMode)0b111_101_101);
        var verified = await VerifyAsync(root);

        Assert.True(verified.ExitCode == 0, verified.ToString());
        Assert.True((verified.StdOut + verified.StdErr).Trim().Length == 0, "systemd-analyze warned:\n" + verified);
    }

    /// <summary>The Prometheus expressions of every panel in deploy/grafana/postern-dashboard.json.</summary>
    public static IReadOnlyList<string> DashboardExpressions()
    {
        var dashboard = JsonNode.Parse(File.ReadAllText(Path.Combine(Deploy, "grafana", "postern-dashboard.json")))!;
        return [.. ((JsonArray)dashboard["panels"]!).SelectMany(p => (JsonArray)p!["targets"]!).Select(t => (string)t!["expr"]!)];
    }

    /// <summary>The postern_* metric names a PromQL expression reads.</summary>
    public static IEnumerable<string> MetricNames(string expression) => MetricName().Matches(expression).Select(m => m.Value);

    [GeneratedRegex(@"\bpostern_[a-z_]+")]
    private static partial Regex MetricName();

    private static Task<CommandResult> VerifyAsync(string root) =>
        ExternalCommand.RunAsync("systemd-analyze", ["verify", "--man=no", $"--root={root}", "/etc/systemd/system/postern.service"], TimeSpan.FromSeconds(60));
}
