using System.Net;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Postern.Smtp.Tests.Infrastructure;

/// <summary>A real <see cref="SmtpServer"/> on 127.0.0.1, port 0, with a recording handler.</summary>
internal sealed class TestServer : IAsyncDisposable
{
    private readonly List<SmtpTestClient> _clients = new();

    private TestServer(SmtpServer server, RecordingHandler handler, SmtpListenerOptions[] listeners)
    {
        Server = server;
        Handler = handler;
        Listeners = listeners;
    }

    public SmtpServer Server { get; }

    public RecordingHandler Handler { get; }

    public SmtpListenerOptions[] Listeners { get; }

    public IPEndPoint EndPoint => Server.BoundEndPoints[0];

    public static SmtpListenerOptions Listener(bool requireTls = false, bool withCertificate = true, string name = "test") => new()
    {
        Name = name,
        EndPoint = new IPEndPoint(IPAddress.Loopback, 0),
        RequireTls = requireTls,
        Certificate = withCertificate ? TestCertificate.Instance : null,
        HostName = "mx.test",
    };

    public static Task<TestServer> StartAsync(SmtpLimits? limits = null, RecordingHandler? handler = null, params SmtpListenerOptions[] listeners) =>
        StartAsync(limits, handler, NullLoggerFactory.Instance, listeners);

    public static async Task<TestServer> StartAsync(SmtpLimits? limits, RecordingHandler? handler, ILoggerFactory loggerFactory, params SmtpListenerOptions[] listeners)
    {
        handler ??= new RecordingHandler();
        if (listeners.Length == 0)
        {
            listeners = [Listener()];
        }
        var server = new SmtpServer(listeners, limits ?? new SmtpLimits(), handler, loggerFactory);
        await server.StartAsync(CancellationToken.None);
        return new TestServer(server, handler, listeners);
    }

    /// <summary>Connects and reads the greeting (disposed with the server).</summary>
    public async Task<SmtpTestClient> ConnectAsync(int listener = 0, bool readGreeting = true)
    {
        var client = await SmtpTestClient.ConnectAsync(Server.BoundEndPoints[listener]);
        lock (_clients)
        {
            _clients.Add(client);
        }
        if (readGreeting)
        {
            var greeting = await client.ReadReplyAsync();
            Assert.Equal("220 mx.test ESMTP Postern", greeting.Lines[0]);
        }
        return client;
    }

    /// <summary>Connects, reads the greeting and says EHLO.</summary>
    public async Task<SmtpTestClient> ConnectEhloAsync(int listener = 0)
    {
        var client = await ConnectAsync(listener);
        var ehlo = await client.CommandAsync("EHLO client.test");
        Assert.Equal(250, ehlo.Code);
        return client;
    }

    public async ValueTask DisposeAsync()
    {
        SmtpTestClient[] clients;
        lock (_clients)
        {
            clients = _clients.ToArray();
        }
        foreach (var client in clients)
        {
            await client.DisposeAsync();
        }
        await Server.DisposeAsync();
    }
}

internal static class Poll
{
    /// <summary>Waits until <paramref name="condition"/> holds, failing after the deadline.</summary>
    public static async Task UntilAsync(Func<bool> condition, string what, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(10));
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                Assert.Fail($"Timed out waiting for: {what}");
            }
            await Task.Delay(10);
        }
    }
}
