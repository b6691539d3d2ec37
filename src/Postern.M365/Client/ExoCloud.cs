using Postern.Core;

namespace Postern.M365.Client;

/// <summary>
/// A Microsoft cloud Exchange Online runs in: where its admin API is, where its Entra ID signs in, and the scope
/// of a token for it. The endpoints and authorities are those of Connect-ExchangeOnline's ExchangeEnvironmentName
/// (office-docs-powershell, Connect-ExchangeOnline.md); Microsoft documents the commercial token scope only
/// (app-only-auth-powershell-v2.md), the others are the resource of each cloud's endpoint, as Microsoft's own
/// modules ask for them. <c>--token-scope</c> overrides it.
/// </summary>
public sealed record ExoCloud(string Name, string EnvironmentName, Uri Endpoint, Uri Authority, string TokenScope)
{
    public static readonly ExoCloud Commercial = new("commercial", "O365Default",
        new("https://outlook.office365.com/"), new("https://login.microsoftonline.com/"), "https://outlook.office365.com/.default");

    public static readonly ExoCloud GccHigh = new("gcc-high", "O365USGovGCCHigh",
        new("https://outlook.office365.us/"), new("https://login.microsoftonline.us/"), "https://outlook.office365.us/.default");

    public static readonly ExoCloud DoD = new("dod", "O365USGovDoD",
        new("https://webmail.apps.mil/"), new("https://login.microsoftonline.us/"), "https://outlook-dod.office365.us/.default");

    public static readonly ExoCloud China = new("china", "O365China",
        new("https://partner.outlook.cn/"), new("https://login.chinacloudapi.cn/"), "https://partner.outlook.cn/.default");

    public static IReadOnlyList<ExoCloud> All { get; } = [Commercial, GccHigh, DoD, China];

    /// <summary>By Postern's name (commercial, gcc-high, dod, china) or Exchange's (O365Default, …).</summary>
    public static ExoCloud Parse(string value) =>
        All.FirstOrDefault(c => c.Name.Equals(value.Trim(), StringComparison.OrdinalIgnoreCase) || c.EnvironmentName.Equals(value.Trim(), StringComparison.OrdinalIgnoreCase))
        ?? throw new PosternException($"'{value}' is not a Microsoft cloud ({string.Join(", ", All.Select(c => c.Name))})");

    /// <summary>Whether <paramref name="authority"/> is one of Microsoft's sign-in hosts (the others are used without instance discovery).</summary>
    public static bool IsMicrosoftAuthority(Uri authority) =>
        All.Any(c => authority.Host.Equals(c.Authority.Host, StringComparison.OrdinalIgnoreCase));
}
