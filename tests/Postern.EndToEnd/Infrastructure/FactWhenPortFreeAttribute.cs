using System.Net;
using System.Net.Sockets;
using Xunit.Abstractions;
using Xunit.Sdk;

namespace Postern.EndToEnd.Infrastructure;

/// <summary>
/// A fact that needs a fixed loopback port (such as the default 127.0.0.1:2525) and is skipped, with the
/// reason, when something else holds it. The port is checked when the test starts, not when tests are
/// discovered, since a long run leaves minutes between the two.
/// </summary>
[XunitTestCaseDiscoverer("Postern.EndToEnd.Infrastructure.FactWhenPortFreeDiscoverer", "Postern.EndToEnd")]
[AttributeUsage(AttributeTargets.Method)]
public sealed class FactWhenPortFreeAttribute(int port) : FactAttribute
{
    public int Port { get; } = port;
}

/// <summary>Turns <see cref="FactWhenPortFreeAttribute"/> into a <see cref="PortFreeTestCase"/>.</summary>
public sealed class FactWhenPortFreeDiscoverer(IMessageSink diagnosticMessageSink) : IXunitTestCaseDiscoverer
{
    public IEnumerable<IXunitTestCase> Discover(ITestFrameworkDiscoveryOptions discoveryOptions, ITestMethod testMethod, IAttributeInfo factAttribute)
    {
        var port = factAttribute.GetConstructorArguments().Cast<int>().Single();
        yield return new PortFreeTestCase(diagnosticMessageSink, discoveryOptions.MethodDisplayOrDefault(),
            discoveryOptions.MethodDisplayOptionsOrDefault(), testMethod, port);
    }
}

/// <summary>A test case that checks its port just before it runs and reports a skip when the port is taken.</summary>
public sealed class PortFreeTestCase : XunitTestCase
{
    private int _port;

    [Obsolete("Called by the de-serializer; should only be called by deriving classes for de-serialization purposes")]
    public PortFreeTestCase()
    {
    }

    public PortFreeTestCase(IMessageSink diagnosticMessageSink, TestMethodDisplay display, TestMethodDisplayOptions options, ITestMethod testMethod, int port)
        : base(diagnosticMessageSink, display, options, testMethod)
    {
        _port = port;
    }

    public override Task<RunSummary> RunAsync(IMessageSink diagnosticMessageSink, IMessageBus messageBus, object[] constructorArguments,
        ExceptionAggregator aggregator, CancellationTokenSource cancellationTokenSource)
    {
        if (SkipReason is null && !IsFree(_port))
            SkipReason = $"127.0.0.1:{_port} is in use by another process; this test needs that exact port (Postern's default) and does not compete for it";
        return base.RunAsync(diagnosticMessageSink, messageBus, constructorArguments, aggregator, cancellationTokenSource);
    }

    public override void Serialize(IXunitSerializationInfo data)
    {
        base.Serialize(data);
        data.AddValue("Port", _port);
    }

    public override void Deserialize(IXunitSerializationInfo data)
    {
        base.Deserialize(data);
        _port = data.GetValue<int>("Port");
    }

    /// <summary>True when binding 127.0.0.1:<paramref name="port"/> succeeds, i.e. no one listens there now.</summary>
    private static bool IsFree(int port)
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            socket.Bind(new IPEndPoint(IPAddress.Loopback, port));
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }
}
