using Postern.M365.Exo;

namespace Postern.M365.Blueprints;

/// <summary>One thing Postern wants in the tenant's Exchange Online, in the order it must be made.</summary>
public abstract class BlueprintItem
{
    protected BlueprintItem(string name, string purpose, string source)
    {
        Name = name;
        Purpose = purpose;
        Source = source;
    }

    /// <summary>How the item is called in plans and reports: "transport rule", "ARC trusted sealer", …</summary>
    public abstract string Kind { get; }

    /// <summary>The item's identity in Exchange Online (rule or connector name, sealer domain, …).</summary>
    public string Name { get; }

    /// <summary>Why the item exists, in one line.</summary>
    public string Purpose { get; }

    /// <summary>Where the requirement comes from (seed document and step).</summary>
    public string Source { get; }

    public string Title => $"{Kind} '{Name}'";

    /// <summary>The cmdlet calls that create the item from nothing (what the script and a plan on an empty tenant do).</summary>
    public abstract IReadOnlyList<CmdletInvocation> CreateInvocations();

    public override string ToString() => Title;
}

/// <summary>Which way a connector carries mail.</summary>
public enum ConnectorDirection
{
    /// <summary>Into Exchange Online (New-InboundConnector): the mail Postern hands back.</summary>
    Inbound,

    /// <summary>Out of Exchange Online (New-OutboundConnector): the mail the rules send to Postern.</summary>
    Outbound,
}

/// <summary>An inbound or outbound connector with the settings Postern keeps it at.</summary>
public sealed class ConnectorItem : BlueprintItem
{
    public ConnectorItem(ConnectorDirection direction, string name, string purpose, string source,
        IReadOnlyList<KeyValuePair<string, object?>> settings, string comment, IReadOnlyList<string>? mustBeEmpty = null)
        : base(name, purpose, source)
    {
        Direction = direction;
        Settings = settings;
        Comment = comment;
        MustBeEmpty = mustBeEmpty ?? [];
    }

    public ConnectorDirection Direction { get; }

    public override string Kind => Direction == ConnectorDirection.Inbound ? "inbound connector" : "outbound connector";

    public string Noun => Direction == ConnectorDirection.Inbound ? "InboundConnector" : "OutboundConnector";

    /// <summary>Parameters compared and corrected on every run (everything but the name and comment).</summary>
    public IReadOnlyList<KeyValuePair<string, object?>> Settings { get; }

    public string Comment { get; }

    /// <summary>Settings Postern does not set and that must stay empty (e.g. RecipientDomains on a rule-scoped connector).</summary>
    public IReadOnlyList<string> MustBeEmpty { get; }

    public object? Setting(string name) => Settings.FirstOrDefault(s => s.Key.Equals(name, StringComparison.OrdinalIgnoreCase)).Value;

    public CmdletInvocation Create() =>
        new("New-" + Noun, Settings.Prepend(new("Name", Name)).Append(new("Comment", Comment)));

    public override IReadOnlyList<CmdletInvocation> CreateInvocations() => [Create()];
}

/// <summary>A transport (mail flow) rule. Created disabled, below every existing rule, in Postern's order.</summary>
public sealed class TransportRuleItem : BlueprintItem
{
    public TransportRuleItem(string name, string purpose, string source, IReadOnlyList<KeyValuePair<string, object?>> settings, string comments)
        : base(name, purpose, source)
    {
        Settings = settings;
        Comments = comments;
    }

    public override string Kind => "transport rule";

    /// <summary>Conditions, exceptions, actions and properties compared and corrected on every run.</summary>
    public IReadOnlyList<KeyValuePair<string, object?>> Settings { get; }

    public string Comments { get; }

    /// <summary>True when the rule sets the relay key header (so making or correcting it needs the key).</summary>
    public bool SetsRelayKey => Settings.Any(s => s.Key == "SetHeaderValue");

    public object? Setting(string name) => Settings.FirstOrDefault(s => s.Key.Equals(name, StringComparison.OrdinalIgnoreCase)).Value;

    /// <summary>New-TransportRule, disabled; with a priority to go above a later Postern rule, without one to go last.</summary>
    public CmdletInvocation Create(int? priority)
    {
        var parameters = new List<KeyValuePair<string, object?>> { new("Name", Name) };
        parameters.AddRange(Settings);
        parameters.Add(new("Enabled", false));
        if (priority is { } p)
            parameters.Add(new("Priority", p));
        parameters.Add(new("Comments", Comments));
        return new CmdletInvocation("New-TransportRule", parameters);
    }

    public override IReadOnlyList<CmdletInvocation> CreateInvocations() => [Create(null)];
}

/// <summary>Postern's ARC signing domain in the tenant's trusted ARC sealers, merged into the existing list.</summary>
public sealed class ArcSealerItem(string domain, string source)
    : BlueprintItem(domain, "Exchange Online trusts the authentication results Postern's ARC seal carries", source)
{
    public override string Kind => "ARC trusted sealer";

    public string Domain => Name;

    /// <summary>Set-ArcConfig replaces the whole list, so the call always carries the existing sealers too.</summary>
    public CmdletInvocation Merge(IReadOnlyList<string> existing) =>
        new("Set-ArcConfig", ("Identity", "Default"), ("ArcTrustedSealers", existing.Append(Domain).ToArray()));

    public override IReadOnlyList<CmdletInvocation> CreateInvocations() => [Merge([])];
}

/// <summary>Postern's egress addresses in the default connection filter policy's IP Allow List (added, never replaced).</summary>
public sealed class IpAllowListItem(IReadOnlyList<string> addresses, string source)
    : BlueprintItem("Default", "Mail from Postern's addresses skips connection filtering", source)
{
    public override string Kind => "connection filter IP allow list";

    public IReadOnlyList<string> Addresses { get; } = addresses;

    public CmdletInvocation Add(IEnumerable<string> missing) =>
        new("Set-HostedConnectionFilterPolicy", ("Identity", "Default"), ("IPAllowList", ExoHashtable.Adding(missing)));

    public override IReadOnlyList<CmdletInvocation> CreateInvocations() => [Add(Addresses)];
}

/// <summary>A spoofed-sender allow entry in the Tenant Allow/Block List ("*, a.b.c.0/24").</summary>
public sealed class SpoofAllowItem(string spoofType, string spoofedUser, string sendingInfrastructure, string source)
    : BlueprintItem($"{spoofType}: {spoofedUser}, {sendingInfrastructure}",
        "Mail Postern returns is not treated as spoofed when it arrives from Postern's addresses", source)
{
    public override string Kind => "spoofed sender allow entry";

    public string SpoofType { get; } = spoofType;

    public string SpoofedUser { get; } = spoofedUser;

    public string SendingInfrastructure { get; } = sendingInfrastructure;

    public CmdletInvocation Create() =>
        new("New-TenantAllowBlockListSpoofItems", ("Identity", "Default"), ("Action", "Allow"), ("SpoofType", SpoofType),
            ("SpoofedUser", SpoofedUser), ("SendingInfrastructure", SendingInfrastructure));

    public override IReadOnlyList<CmdletInvocation> CreateInvocations() => [Create()];
}

/// <summary>Settings of the remote domain "Default" (how Exchange formats mail for outside domains, seed 003 steps 21–25).</summary>
public sealed class RemoteDomainItem(IReadOnlyList<KeyValuePair<string, object?>> settings, string source)
    : BlueprintItem("Default", "Mail reaches Postern as MIME in UTF-8 (no TNEF/rich text), and out-of-office replies still flow", source)
{
    public override string Kind => "remote domain";

    public IReadOnlyList<KeyValuePair<string, object?>> Settings { get; } = settings;

    public CmdletInvocation Set(IEnumerable<KeyValuePair<string, object?>> settings) =>
        new("Set-RemoteDomain", settings.Prepend(new("Identity", Name)));

    public override IReadOnlyList<CmdletInvocation> CreateInvocations() => [Set(Settings)];
}

/// <summary>A check, not a change: each protected domain must be an Authoritative accepted domain (seed 003 step 26).</summary>
public sealed class AcceptedDomainCheck(IReadOnlyList<string> domains, string source)
    : BlueprintItem(string.Join(", ", domains), "Mail for the domain is delivered to Exchange Online mailboxes, not relayed elsewhere", source)
{
    public override string Kind => "accepted domains";

    public IReadOnlyList<string> Domains { get; } = domains;

    public override IReadOnlyList<CmdletInvocation> CreateInvocations() => [];
}
