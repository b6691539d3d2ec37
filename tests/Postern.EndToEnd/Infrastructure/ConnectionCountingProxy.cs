namespace Postern.EndToEnd.Infrastructure;

/// <summary>
/// A loopback proxy in front of a next hop (smtp-sink) that counts the connections made through it and the
/// most that were open at once: what connection reuse and a per-destination limit look like from the
/// receiving side.
/// </summary>
public sealed class ConnectionCountingProxy(int upstreamPort, int port = 0) : LoopbackProxy(upstreamPort, port);
