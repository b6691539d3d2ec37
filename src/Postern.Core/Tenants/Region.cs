namespace Postern.Core.Tenants;

/// <summary>The regions a deployment serves; each has its own smart host, certificate and egress addresses.</summary>
public static class Region
{
    public static readonly IReadOnlyList<string> All = ["au", "eu", "us"];

    public static bool IsKnown(string value) => All.Contains(value);
}
