namespace Postern.Core.Authentication;

/// <summary>Receiver-side SPF settings.</summary>
public sealed class SpfOptions
{
    /// <summary>
    /// Explanation for a fail when the domain publishes none (RFC 7208 §6.2). A macro-string, so it can name
    /// the domain (%{o}) and client (%{c}).
    /// </summary>
    public string DefaultExplanation { get; set; } = "%{o} does not authorize %{c} to send its mail (SPF)";

    /// <summary>This receiver's domain, for the %{r} macro in explanations; "unknown" when not set (RFC 7208 §7.3).</summary>
    public string? ReceiverDomain { get; set; }

    /// <summary>Terms that query DNS (include, a, mx, ptr, exists, redirect) allowed per check; RFC 7208 §4.6.4 says 10.</summary>
    public int MaxDnsLookups { get; set; } = 10;

    /// <summary>Lookups that return NXDOMAIN or nothing allowed per check; RFC 7208 §4.6.4 suggests 2.</summary>
    public int MaxVoidLookups { get; set; } = 2;

    /// <summary>The clock for the %{t} macro.</summary>
    public TimeProvider TimeProvider { get; set; } = TimeProvider.System;
}
