using Postern.Core;
using Postern.Core.Tenants;

namespace Postern.M365.Blueprints;

/// <summary>
/// Who Postern's rules apply to: everyone, or (a proof-of-concept rollout, seed 004 "limited scope")
/// listed recipients for inbound mail and listed senders for outbound mail.
/// </summary>
public sealed record ProvisioningScope(IReadOnlyList<string> Recipients, IReadOnlyList<string> Senders)
{
    public static ProvisioningScope AllUsers { get; } = new([], []);

    /// <summary>True when no list is given: the rules apply to all mail of the tenant's domains.</summary>
    public bool IsAllUsers => Recipients.Count == 0 && Senders.Count == 0;

    public string Describe() => IsAllUsers
        ? "all users"
        : $"limited to {Recipients.Count} recipient(s) and {Senders.Count} sender(s)";

    /// <summary>
    /// Reads a scope file: one address per line; a bare address is both a recipient (inbound) and a
    /// sender (outbound); "recipient: ADDRESS" or "sender: ADDRESS" limits it to one direction; '#' starts a comment.
    /// </summary>
    public static ProvisioningScope Parse(string text, string source)
    {
        var recipients = new List<string>();
        var senders = new List<string>();
        var lineNumber = 0;
        foreach (var rawLine in text.Split('\n'))
        {
            lineNumber++;
            var line = rawLine;
            var hash = line.IndexOf('#', StringComparison.Ordinal);
            if (hash >= 0)
                line = line[..hash];
            line = line.Trim();
            if (line.Length == 0)
                continue;
            bool inbound = true, outbound = true;
            var colon = line.IndexOf(':', StringComparison.Ordinal);
            if (colon >= 0)
            {
                var keyword = line[..colon].Trim().ToLowerInvariant();
                (inbound, outbound) = keyword switch
                {
                    "recipient" => (true, false),
                    "sender" => (false, true),
                    _ => throw new PosternException($"scope file '{source}' line {lineNumber}: '{line[..colon].Trim()}' is not 'recipient' or 'sender'"),
                };
                line = line[(colon + 1)..].Trim();
            }
            var address = NormalizeAddress(line)
                ?? throw new PosternException($"scope file '{source}' line {lineNumber}: '{line}' is not an email address");
            if (inbound && !recipients.Contains(address))
                recipients.Add(address);
            if (outbound && !senders.Contains(address))
                senders.Add(address);
        }
        if (recipients.Count == 0 && senders.Count == 0)
            throw new PosternException($"scope file '{source}' lists no address; leave out --scope for all users");
        return new ProvisioningScope(recipients, senders);
    }

    public static ProvisioningScope Load(string path)
    {
        try
        {
            return Parse(File.ReadAllText(path), path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new PosternException($"cannot read scope file '{path}': {ex.Message}");
        }
    }

    private static string? NormalizeAddress(string value)
    {
        var at = value.LastIndexOf('@');
        if (at <= 0 || at == value.Length - 1)
            return null;
        var local = value[..at];
        if (local.Any(c => c <= ' ' || c is '<' or '>' or ',' or ';' or '"' or '(' or ')' or '[' or ']' or '\\' || c > '~'))
            return null;
        return DomainName.Normalize(value[(at + 1)..]) is { } domain ? local + "@" + domain : null;
    }
}
