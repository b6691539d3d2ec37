namespace Postern.Core.Tenants;

/// <summary>How a tenant's outbound mail leaves Postern.</summary>
public enum OutboundMode
{
    /// <summary>Postern takes no outbound mail for this tenant.</summary>
    Off,

    /// <summary>Postern delivers to the recipient's MX itself.</summary>
    Direct,

    /// <summary>Postern hands the message back to Microsoft 365, which sends it on.</summary>
    ViaM365,
}

public static class OutboundModes
{
    public static string Format(OutboundMode mode) => mode switch
    {
        OutboundMode.Off => "off",
        OutboundMode.Direct => "direct",
        OutboundMode.ViaM365 => "via-m365",
        _ => throw new ArgumentOutOfRangeException(nameof(mode)),
    };

    public static OutboundMode Parse(string value) => value.ToLowerInvariant() switch
    {
        "off" => OutboundMode.Off,
        "direct" => OutboundMode.Direct,
        "via-m365" => OutboundMode.ViaM365,
        _ => throw new PosternException($"'{value}' is not an outbound mode (off, direct, via-m365)"),
    };
}
