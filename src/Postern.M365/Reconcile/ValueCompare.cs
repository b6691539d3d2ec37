using System.Globalization;
using System.Net;
using System.Text.RegularExpressions;
using Postern.Core.Tenants;
using Postern.M365.Exo;

namespace Postern.M365.Reconcile;

/// <summary>One parameter whose current value is not the desired one.</summary>
public sealed record Difference(string Parameter, string Expected, string Actual);

/// <summary>
/// Compares a desired parameter value with what Exchange returns, the way Exchange means them:
/// case-insensitive text, lists as sets, "smtp:*;1" as "*", IP addresses in canonical form,
/// and the relay key by hash so that verify never needs the key itself.
/// </summary>
internal static partial class ValueCompare
{
    /// <summary>Booleans for which $null is a value of its own (TNEFEnabled: "follow user settings"), not "false".</summary>
    private static readonly HashSet<string> TriState = CmdletReference.Default.Cmdlets
        .SelectMany(CmdletReference.Default.Parameters)
        .Where(p => p.Type == "Boolean" && p.Values?.Contains("$null") == true)
        .Select(p => p.Name).ToHashSet(StringComparer.OrdinalIgnoreCase);

    /// <summary>Null when equal; otherwise the difference, with secrets hidden: the relay key, and the loop tokens wherever they appear.</summary>
    public static Difference? Compare(string parameter, object? desired, ExoObject current, Tenant? tenant)
    {
        if (CmdletInvocation.SecretParameters.Contains(parameter))
            return CompareSecret(parameter, desired as string, current.GetString(parameter), tenant?.RelayKeyHash, tenant?.PreviousRelayKeyHash);
        var same = desired switch
        {
            null => !IsSet(current, parameter),
            bool b => current.GetBool(parameter) is { } actual ? actual == b : !b && !TriState.Contains(parameter),
            int i => current.GetInt(parameter) == i,
            string s => TenantStateText(current.GetString(parameter)).Equals(TenantStateText(s), StringComparison.OrdinalIgnoreCase),
            IReadOnlyList<string> list => Normalize(parameter, current.GetList(parameter)).SequenceEqual(Normalize(parameter, list)),
            _ => throw new ArgumentException($"cannot compare {desired.GetType().Name}"),
        };
        if (same)
            return null;
        // The loop token is a secret (whoever knows it can make mail skip Postern), yet a plain word in
        // Postern's rules: where the blueprint puts it, every word is named, never shown.
        if (tenant is not null && desired is IReadOnlyList<string> words && words.Contains(tenant.LoopToken, StringComparer.OrdinalIgnoreCase))
            return new Difference(parameter, NameLoopTokens(words, tenant), NameLoopTokens(current.GetList(parameter), tenant));
        return new Difference(parameter, Display(desired), HideLoopTokens(Display(current, parameter), tenant));
    }

    /// <summary>The words of a loop-token parameter as "the loop token", "the previous loop token" or "(hidden)".</summary>
    private static string NameLoopTokens(IEnumerable<string> words, Tenant tenant)
    {
        var names = words.Select(w => w.Trim()).Where(w => w.Length > 0).Select(w =>
            w.Equals(tenant.LoopToken, StringComparison.OrdinalIgnoreCase) ? "the loop token"
            : w.Equals(tenant.PreviousLoopToken, StringComparison.OrdinalIgnoreCase) ? "the previous loop token"
            : "(hidden)").ToArray();
        return names.Length == 0 ? "(none)" : string.Join(", ", names);
    }

    /// <summary>
    /// Text shown from the tenant with the tenant's loop tokens named, and anything else that looks like one
    /// (a token rotated away, still in a rule) hidden.
    /// </summary>
    public static string HideLoopTokens(string text, Tenant? tenant) =>
        tenant is null ? text : LoopTokenLike().Replace(text, m => NameLoopTokens([m.Value], tenant));

    [GeneratedRegex(@"\b[0-9A-Fa-f]{32}\b")]
    private static partial Regex LoopTokenLike();

    /// <summary>Whether the property holds anything (false, empty and null do not).</summary>
    public static bool IsSet(ExoObject current, string parameter)
    {
        if (!current.Has(parameter))
            return false;
        if (current.GetBool(parameter) is { } b)
            return b;
        return current.GetList(parameter).Any(v => v.Trim().Length > 0);
    }

    public static string Display(object? value) => value switch
    {
        null => "(none)",
        IReadOnlyList<string> { Count: 0 } => "(none)",
        _ => CmdletInvocation.Display(value),
    };

    public static string Display(ExoObject current, string parameter)
    {
        if (CmdletInvocation.SecretParameters.Contains(parameter))
            return IsSet(current, parameter) ? "(hidden)" : "(none)";
        if (!IsSet(current, parameter) && current.GetBool(parameter) is null)
            return "(none)";
        if (current.GetBool(parameter) is { } b)
            return b ? "$true" : "$false";
        var list = current.GetList(parameter);
        return list.Count == 1 ? list[0] : string.Join(", ", list);
    }

    private static Difference? CompareSecret(string parameter, string? desired, string? actual, byte[]? currentHash, byte[]? previousHash)
    {
        if (actual is null || actual.Length == 0)
            return new Difference(parameter, "the relay key", "(none)");
        bool matches;
        if (desired is null || desired == Blueprints.Blueprint.RelayKeyPlaceholder)
            // Without the key: the rule is right when it carries the tenant's current key.
            matches = RelayKey.Matches(RelayKey.Hash(actual), currentHash);
        else
            matches = string.Equals(actual.Trim(), desired.Trim(), StringComparison.Ordinal);
        if (matches)
            return null;
        var what = RelayKey.Matches(RelayKey.Hash(actual), previousHash) ? "the previous relay key" : "not the tenant's relay key";
        return new Difference(parameter, "the relay key", what);
    }

    private static string TenantStateText(string? value) => (value ?? "").Trim();

    private static IReadOnlyList<string> Normalize(string parameter, IEnumerable<string> values) =>
        values.Select(v => NormalizeItem(parameter, v)).Where(v => v.Length > 0).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToArray();

    private static string NormalizeItem(string parameter, string value)
    {
        var v = value.Trim();
        // Get-InboundConnector shows sender domains as "smtp:contoso.com;1".
        if (v.StartsWith("smtp:", StringComparison.OrdinalIgnoreCase))
            v = v[5..];
        var semicolon = v.LastIndexOf(';');
        if (semicolon > 0 && int.TryParse(v[(semicolon + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out _))
            v = v[..semicolon];
        if (parameter.Contains("IP", StringComparison.OrdinalIgnoreCase) || parameter.EndsWith("Ranges", StringComparison.Ordinal))
            v = CanonicalIp(v);
        return v.ToLowerInvariant();
    }

    /// <summary>2001:DB8:0:0::1 and 2001:db8::1 are the same address; "a/32" is "a".</summary>
    private static string CanonicalIp(string value)
    {
        var slash = value.IndexOf('/', StringComparison.Ordinal);
        var address = slash < 0 ? value : value[..slash];
        if (!IPAddress.TryParse(address, out var ip))
            return value;
        var prefix = slash < 0 ? null : value[(slash + 1)..];
        var full = ip.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork ? "32" : "128";
        return prefix is null || prefix == full ? ip.ToString() : $"{ip}/{prefix}";
    }
}
