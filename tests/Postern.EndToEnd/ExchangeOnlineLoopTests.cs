using Postern.EndToEnd.Infrastructure;
using Xunit.Abstractions;

namespace Postern.EndToEnd;

/// <summary>
/// Issue 8's end-to-end tests: real Postern, real SMTP, the simulated Exchange Online tenant (its connectors and
/// rules as `postern m365 apply` made them), mail from the Internet and from mailboxes.
/// </summary>
public sealed class ExchangeOnlineLoopTests(ITestOutputHelper output) : EndToEndTest(output)
{
    private const string ExternalSender = "sender@external.test";

    private async Task<ExchangeOnlineLoop> StartLoopAsync(params LoopTenantSpec[] tenants)
    {
        var loop = Own(await ExchangeOnlineLoop.StartAsync(Directory, Postern, tenants));
        AddDiagnostics(loop.Diagnostics);
        return loop;
    }

    [Theory]
    [InlineData("integrated")]
    [InlineData("relay")]
    [InlineData("relay-legacy")]
    public async Task Internet_mail_goes_through_Postern_once_and_reaches_the_mailbox_scanned_sealed_and_without_Postern_s_headers(string profile)
    {
        var loop = await StartLoopAsync(new LoopTenantSpec("contoso", "contoso.test", profile));

        var sent = await loop.SendFromInternetAsync(ExternalSender, "alice@contoso.test", $"Inbound {profile}");
        Assert.True(sent.ExitCode == 0, sent.ToString());

        var delivered = Assert.Single(await loop.WaitForMailboxAsync("alice@contoso.test"));
        Assert.Equal($"Inbound {profile}", delivered.Header("Subject"));
        Assert.False(delivered.HasHeader("X-Postern-Loop"), delivered.HeaderSection);
        Assert.False(delivered.HasHeader("X-Postern-Key"), delivered.HeaderSection);
        Assert.NotNull(delivered.Header("X-Postern-Verdict"));
        // Postern's ARC set on top of the one Exchange Online sealed when it sent the message to Postern.
        Assert.Contains(delivered.Headers("ARC-Seal"), s => s.Contains("i=2") && s.Contains("d=arc.postern.example"));
        Assert.Contains(delivered.Headers("ARC-Seal"), s => s.Contains("i=1") && s.Contains("d=microsoft.com"));

        var trace = Assert.Single(await TraceQuery.ListAsync(Postern));
        Assert.Equal("inbound", trace.Direction);
        Assert.Equal("delivered", trace.State);
        // Handed back with the tenant's own certificate, from Postern's egress address.
        var tenant = loop.Tenants["contoso"];
        Assert.Contains(loop.Transport.Log.Connections, c => c.Client.ToString() == ExchangeOnlineLoop.PosternEgress
            && c.CertificateNames.Contains($"{tenant.TenantId}.eu.postern.example"));
        await Task.Delay(1500);
        Assert.Single(loop.Mailbox("alice@contoso.test"));
    }
}
