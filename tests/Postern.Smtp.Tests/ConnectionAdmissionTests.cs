using System.Net;
using Postern.Smtp.Internal;
using Postern.Smtp.Tests.Infrastructure;

namespace Postern.Smtp.Tests;

/// <summary>Who may connect, and how many: allowed networks, per-client counting, and refused connections closed at once.</summary>
public sealed class ConnectionAdmissionTests
{
    private static SmtpListenerOptions Listener(IPAddress address, params string[] allowed) => new()
    {
        Name = "test",
        EndPoint = new IPEndPoint(address, 0),
        RequireTls = false,
        HostName = "mx.test",
        AllowedClientNetworks = allowed.Select(n => IPNetwork.Parse(n)).ToArray(),
    };

    [Fact]
    public void Counts_ipv6_clients_per_64_and_ipv4_clients_per_address()
    {
        var limiter = new ConnectionLimiter(maxTotal: 100, maxPerAddress: 2);

        Assert.Equal(Admission.Admitted, limiter.TryAcquire(IPAddress.Parse("2001:db8:1:2::1")));
        Assert.Equal(Admission.Admitted, limiter.TryAcquire(IPAddress.Parse("2001:db8:1:2:ffff:ffff:ffff:fffe")));
        // A third address in the same /64 is the same client.
        Assert.Equal(Admission.TooManyFromAddress, limiter.TryAcquire(IPAddress.Parse("2001:db8:1:2:abcd::9")));
        // The neighbouring /64 is another client.
        Assert.Equal(Admission.Admitted, limiter.TryAcquire(IPAddress.Parse("2001:db8:1:3::1")));
        // IPv4 is counted per address, and an IPv4-mapped client as its IPv4 address.
        Assert.Equal(Admission.Admitted, limiter.TryAcquire(IPAddress.Parse("192.0.2.1")));
        Assert.Equal(Admission.Admitted, limiter.TryAcquire(IPAddress.Parse("::ffff:192.0.2.1")));
        Assert.Equal(Admission.TooManyFromAddress, limiter.TryAcquire(IPAddress.Parse("192.0.2.1")));
        Assert.Equal(Admission.Admitted, limiter.TryAcquire(IPAddress.Parse("192.0.2.2")));

        // Releasing any address of the /64 frees a slot of that /64.
        limiter.Release(IPAddress.Parse("2001:db8:1:2::1"));
        Assert.Equal(Admission.Admitted, limiter.TryAcquire(IPAddress.Parse("2001:db8:1:2::77")));
        Assert.Equal(6, limiter.Total);
    }

    [Fact]
    public async Task Refuses_a_client_outside_the_allowed_networks_with_554_and_closes()
    {
        await using var server = await TestServer.StartAsync(null, null, Listener(IPAddress.Loopback, "10.0.0.0/8", "2001:db8::/32"));

        var client = await server.ConnectAsync(readGreeting: false);

        Assert.Equal("554 5.7.1 Access denied: your network may not connect to this service", (await client.ReadReplyAsync()).Lines[0]);
        Assert.True(await client.WaitForCloseAsync(TimeSpan.FromSeconds(2)));
        Assert.Empty(server.Handler.Sessions);
        Assert.Equal(0, server.Server.ActiveSessions);
    }

    [Theory]
    [InlineData("127.0.0.0/8", "127.0.0.1", true)]
    [InlineData("127.0.0.1/32", "127.0.0.1", true)]
    [InlineData("10.0.0.0/8", "127.0.0.1", false)]
    [InlineData("::1/128", "::1", true)]
    [InlineData("127.0.0.0/8", "::1", false)]
    [InlineData("2001:db8::/32", "::1", false)]
    public async Task Admits_only_the_allowed_networks_ipv4_and_ipv6(string allowed, string listenOn, bool admitted)
    {
        await using var server = await TestServer.StartAsync(null, null, Listener(IPAddress.Parse(listenOn), allowed));

        var client = await server.ConnectAsync(readGreeting: false);
        var greeting = await client.ReadReplyAsync();

        Assert.Equal(admitted ? "220" : "554", greeting.Lines[0][..3]);
        if (admitted)
            Assert.Equal("250 2.0.0", (await client.CommandAsync("NOOP")).Status);
        else
            Assert.True(await client.WaitForCloseAsync(TimeSpan.FromSeconds(2)));
    }

    [Fact]
    public async Task A_flood_of_refused_connections_is_answered_and_closed_at_once_and_leaves_nothing_open()
    {
        await using var server = await TestServer.StartAsync(new SmtpLimits { MaxConnectionsPerIp = 1 });
        var held = await server.ConnectAsync();
        var descriptorsBefore = OpenDescriptors();

        // 300 clients over the limit that never send anything: each must hear 421 and see the server close, not wait.
        var refused = await Task.WhenAll(Enumerable.Range(0, 300).Select(async _ =>
        {
            await using var client = await SmtpTestClient.ConnectAsync(server.EndPoint);
            var reply = await client.ReadReplyAsync(TimeSpan.FromSeconds(5));
            return (reply.Lines[0], Closed: await client.WaitForCloseAsync(TimeSpan.FromSeconds(5)));
        }));

        Assert.All(refused, r => Assert.Equal(("421 4.7.0 Too many connections from your address", true), r));
        Assert.Equal(1, server.Server.ActiveSessions);
        // The server keeps no socket of a refused client: once the clients are gone, so are the descriptors.
        await Poll.UntilAsync(() => OpenDescriptors() <= descriptorsBefore + 10, $"descriptors back to about {descriptorsBefore} (now {OpenDescriptors()})");
        Assert.Equal("250 2.0.0", (await held.CommandAsync("NOOP")).Status);
    }

    private static int OpenDescriptors() => Directory.GetFiles("/proc/self/fd").Length;
}
