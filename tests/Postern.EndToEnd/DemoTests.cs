using Postern.EndToEnd.Infrastructure;
using Xunit.Abstractions;

namespace Postern.EndToEnd;

/// <summary>`postern demo` run to completion, as a new user runs it: without scanning daemons, and with them.</summary>
[Collection(RspamdCollection.Name)]
public sealed class DemoTests(RspamdDaemon rspamd, ITestOutputHelper output) : EndToEndTest(output)
{
    [Fact]
    public async Task Without_clamd_and_rspamd_every_sample_arrives_and_the_missing_engines_are_named()
    {
        var result = await RunDemoAsync("--clamd", "none", "--rspamd", "none");

        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Contains("✓ Done: 7 changes made, rules enabled", result.StdOut);
        Assert.Matches(@"clean message\s+→ mailbox alice@contoso\.com, through Postern once", result.StdOut);
        Assert.Matches(@"spam \(GTUBE\)\s+→ mailbox alice@contoso\.com", result.StdOut);
        Assert.Matches(@"virus \(EICAR\)\s+→ mailbox alice@contoso\.com", result.StdOut);
        Assert.Contains("Rspamd: engine not installed", result.StdOut);
        Assert.Contains("ClamAV: engine not installed", result.StdOut);
        Assert.Matches(@"outbound\s+→ the Internet \(partner@example\.net\), sent on by Exchange Online, through Postern once", result.StdOut);
        Assert.Matches(@"to the second tenant\s+→ mailbox bob@fabrikam\.com, through Postern 2 times", result.StdOut);
        Assert.Contains("Postern, outbound for contoso: delivered", result.StdOut);
        Assert.Contains("Postern, inbound for fabrikam: delivered", result.StdOut);
        // Postern checks authentication against the emulator's DNS: Exchange Online's seal and its own both verify.
        Assert.DoesNotContain("ARC chain fails", result.StdOut);
        Assert.Contains("Demo complete.", result.StdOut);
        AssertStopped(result);
    }

    [Fact]
    public async Task With_clamd_and_rspamd_the_virus_and_the_spam_are_held_in_the_quarantine()
    {
        var clamd = Own(await ClamdDaemon.StartAsync(Directory));

        var result = await RunDemoAsync("--clamd", clamd.UnixEndpoint, "--rspamd", rspamd.Url);

        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Contains($"clamd: using {clamd.UnixEndpoint}", result.StdOut);
        Assert.Matches(@"spam \(GTUBE\)\s+→ held in Postern's quarantine", result.StdOut);
        Assert.Matches(@"virus \(EICAR\)\s+→ held in Postern's quarantine", result.StdOut);
        Assert.Contains(ClamdDaemon.EicarSignature, result.StdOut);
        Assert.Matches(@"clean message\s+→ mailbox alice@contoso\.com, through Postern once", result.StdOut);
        Assert.DoesNotContain("engine not installed", result.StdOut);
        AssertStopped(result);
    }

    private async Task<CommandResult> RunDemoAsync(params string[] engines)
    {
        var directory = Directory.Sub("demo");
        var result = await ExternalCommand.RunAsync("dotnet", [PosternProcess.DllPath, "demo", "--directory", directory, "--exit", .. engines],
            TimeSpan.FromMinutes(4));
        Output.WriteLine(result.StdOut + result.StdErr);
        return result;
    }

    /// <summary>Everything the demo started is gone once it has exited (its children would keep the ports).</summary>
    private static void AssertStopped(CommandResult result)
    {
        var port = System.Text.RegularExpressions.Regex.Match(result.StdOut, @"smart host 127\.0\.0\.1:(\d+)");
        Assert.True(port.Success, result.StdOut);
        Assert.False(FreePort.Accepts(int.Parse(port.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture)), "postern serve still listens after the demo exited");
    }
}
