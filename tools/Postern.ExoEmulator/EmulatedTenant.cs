using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Postern.ExoEmulator;

/// <summary>
/// One organisation's Exchange Online state and the cmdlets that read and change it, with the
/// rules Exchange enforces: unique names, rule priorities that shift, rules that may only route
/// to an existing connector, a connector type that cannot change in place, lists that replace.
/// </summary>
public sealed class EmulatedTenant
{
    private readonly CmdletSchema _schema;
    private readonly object _lock = new();
    private readonly List<ExoRecord> _inbound = [];
    private readonly List<ExoRecord> _outbound = [];
    private readonly List<ExoRecord> _rules = [];
    private readonly List<ExoRecord> _spoof = [];
    private readonly List<ExoRecord> _acceptedDomains = [];
    private readonly List<ExoRecord> _remoteDomains = [];
    private readonly List<string> _arcSealers = [];
    private readonly List<string> _ipAllowList = [];
    private readonly List<string> _ipBlockList = [];
    private List<string> _warnings = [];

    /// <summary>Learn, inbound connector FAQ: the warning when an OnPremises inbound connector is created on such a tenant.</summary>
    public const string CreatedDisabledWarning = "Inbound connector for this service offering is created in a disabled state. Contact Support to enable it.";

    /// <summary>Learn, inbound connector FAQ: the warning when such a connector is updated (it stays disabled).</summary>
    public const string CannotEnableWarning = "For this service offering, you can't enable an inbound connector. Contact Support to enable it.";

    internal EmulatedTenant(CmdletSchema schema, Guid tenantId, string organization)
    {
        _schema = schema;
        TenantId = tenantId;
        Organization = organization;
        _acceptedDomains.Add(new ExoRecord(new JsonObject
        {
            ["Name"] = organization,
            ["DomainName"] = organization,
            ["DomainType"] = "Authoritative",
            ["Default"] = true,
        }));
        _remoteDomains.Add(new ExoRecord(new JsonObject
        {
            ["Name"] = "Default",
            ["DomainName"] = "*",
            ["TNEFEnabled"] = null,
            ["CharacterSet"] = "iso-8859-1",
            ["NonMimeCharacterSet"] = "iso-8859-1",
            ["AllowedOOFType"] = "External",
            ["ContentType"] = "MimeHtmlText",
            ["AutoReplyEnabled"] = true,
            ["AutoForwardEnabled"] = true,
            ["DeliveryReportEnabled"] = true,
            ["NDREnabled"] = true,
        }));
    }

    public Guid TenantId { get; }

    /// <summary>The initial domain, contoso.onmicrosoft.com.</summary>
    public string Organization { get; }

    /// <summary>
    /// A tenant whose service offering does not allow OnPremises inbound connectors (many tenants created since
    /// 2023): New-InboundConnector creates one disabled, and Set-InboundConnector cannot enable it; both succeed
    /// with a warning, not an error (Learn, inbound connector FAQ; OrganizationInboundConnectorProhibitedException).
    /// </summary>
    public bool OnPremisesInboundProhibited { get; set; }

    /// <summary>The Exchange Online resource of the tenant's cloud: tokens must be asked for {Resource}/.default.</summary>
    public string Resource { get; set; } = ExoEmulator.Resource;

    /// <summary>Entra app registrations allowed to call: app id → certificate (public part).</summary>
    public Dictionary<string, X509Certificate2> Apps { get; } = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>Adds an accepted domain (what Exchange does when the admin verifies a domain).</summary>
    public void AddAcceptedDomain(string domain, string domainType = "Authoritative")
    {
        lock (_lock)
        {
            _acceptedDomains.RemoveAll(d => d.Name.Equals(domain, StringComparison.OrdinalIgnoreCase));
            _acceptedDomains.Add(new ExoRecord(new JsonObject
            {
                ["Name"] = domain,
                ["DomainName"] = domain,
                ["DomainType"] = domainType,
                ["Default"] = false,
            }));
        }
    }

    /// <summary>Runs a cmdlet with parameters as they arrive in an InvokeCommand body; returns the output objects and Exchange's warnings.</summary>
    public CmdletOutput Invoke(string cmdlet, JsonObject? parameters)
    {
        var p = _schema.Bind(cmdlet, parameters);
        p.Remove("Confirm");
        p.Remove("WhatIf");
        lock (_lock)
        {
            _warnings = [];
            return new CmdletOutput(Run(cmdlet, p), _warnings);
        }
    }

    private IReadOnlyList<JsonObject> Run(string cmdlet, Dictionary<string, JsonNode?> p)
    {
        return cmdlet.ToLowerInvariant() switch
        {
            "get-inboundconnector" => Get(_inbound, p, "InboundConnector", Connector),
            "new-inboundconnector" => [NewInboundConnector(p)],
            "set-inboundconnector" => Nothing(() => SetInboundConnector(p)),
            "remove-inboundconnector" => Nothing(() => _inbound.Remove(Find(_inbound, p, "InboundConnector"))),
            "get-outboundconnector" => GetOutboundConnectors(p),
            "new-outboundconnector" => [NewOutboundConnector(p)],
            "set-outboundconnector" => Nothing(() => SetOutboundConnector(p)),
            "remove-outboundconnector" => Nothing(() => RemoveOutboundConnector(p)),
            "get-transportrule" => GetTransportRules(p),
            "new-transportrule" => [NewTransportRule(p)],
            "set-transportrule" => Nothing(() => SetTransportRule(p)),
            "enable-transportrule" => Nothing(() => EnableTransportRule(p, true)),
            "disable-transportrule" => Nothing(() => EnableTransportRule(p, false)),
            "remove-transportrule" => Nothing(() => _rules.Remove(Find(_rules, p, "TransportRule"))),
            "get-arcconfig" => [ArcConfig()],
            "set-arcconfig" => Nothing(() => SetArcConfig(p)),
            "get-hostedconnectionfilterpolicy" => GetConnectionFilterPolicy(p),
            "set-hostedconnectionfilterpolicy" => Nothing(() => SetConnectionFilterPolicy(p)),
            "get-tenantallowblocklistspoofitems" => GetSpoofItems(p),
            "new-tenantallowblocklistspoofitems" => [NewSpoofItem(p)],
            "set-tenantallowblocklistspoofitems" => Nothing(() => SetSpoofItems(p)),
            "remove-tenantallowblocklistspoofitems" => Nothing(() => RemoveSpoofItems(p)),
            "get-remotedomain" => Get(_remoteDomains, p, "RemoteDomain", Plain),
            "set-remotedomain" => Nothing(() => Apply(Find(_remoteDomains, p, "RemoteDomain"), "Set-RemoteDomain", p, "Identity")),
            "get-accepteddomain" => Get(_acceptedDomains, p, "AcceptedDomain", Plain),
            _ => throw new ExoError(400, "System.NotSupportedException", $"The emulator does not implement {cmdlet}."),
        };
    }

    /// <summary>Runs the tenant's transport rules over a message, as Exchange's transport does (the emulator's own engine).</summary>
    public MailFlow.RuleRun RunTransportRules(MailFlow.MailItem mail)
    {
        ExoRecord[] rules;
        HashSet<string> accepted;
        lock (_lock)
        {
            rules = _rules.Select(r => r.Clone()).ToArray();
            accepted = _acceptedDomains.Select(d => d.Name.ToLowerInvariant()).ToHashSet();
        }
        return MailFlow.TransportRuleEngine.Run(rules, accepted, mail);
    }

    /// <summary>What the transport of this tenant reads: connectors, accepted domains and the IP allow list, copied.</summary>
    internal MailFlow.TenantMailView MailView()
    {
        lock (_lock)
        {
            return new MailFlow.TenantMailView(this,
                [.. _inbound.Select(r => r.Clone())],
                [.. _outbound.Select(r => r.Clone())],
                _acceptedDomains.Select(d => d.Name.ToLowerInvariant()).ToHashSet(),
                [.. _ipAllowList]);
        }
    }

    /// <summary>A snapshot of everything, for tests and the emulator's state endpoint.</summary>
    public JsonObject Snapshot()
    {
        lock (_lock)
        {
            return new JsonObject
            {
                ["TenantId"] = TenantId.ToString(),
                ["Organization"] = Organization,
                ["InboundConnectors"] = new JsonArray([.. _inbound.Select(r => (JsonNode)Connector(r, "InboundConnector"))]),
                ["OutboundConnectors"] = new JsonArray([.. _outbound.Select(r => (JsonNode)Connector(r, "OutboundConnector"))]),
                ["TransportRules"] = new JsonArray([.. _rules.Select(r => (JsonNode)Rule(r))]),
                ["ArcTrustedSealers"] = new JsonArray([.. _arcSealers.Select(s => (JsonNode)JsonValue.Create(s))]),
                ["IPAllowList"] = new JsonArray([.. _ipAllowList.Select(s => (JsonNode)JsonValue.Create(s))]),
                ["SpoofItems"] = new JsonArray([.. _spoof.Select(r => (JsonNode)Plain(r, "Spoof"))]),
                ["RemoteDomains"] = new JsonArray([.. _remoteDomains.Select(r => (JsonNode)Plain(r, "RemoteDomain"))]),
                ["AcceptedDomains"] = new JsonArray([.. _acceptedDomains.Select(r => (JsonNode)Plain(r, "AcceptedDomain"))]),
            };
        }
    }

    // ---- connectors ------------------------------------------------------------------------

    private JsonObject NewInboundConnector(Dictionary<string, JsonNode?> p)
    {
        var name = Text(p, "Name")!;
        Unique(_inbound, name, "inbound connector");
        var record = new ExoRecord(Defaults("New-InboundConnector"));
        record.Props["ConnectorType"] = "Partner";
        Apply(record, "New-InboundConnector", p);
        CheckInbound(record);
        if (OnPremisesInboundProhibited && IsOnPremises(record) && record.Bool("Enabled") != false)
        {
            record.Props["Enabled"] = false;
            _warnings.Add(CreatedDisabledWarning);
        }
        _inbound.Add(record);
        return Connector(record, "InboundConnector");
    }

    private void SetInboundConnector(Dictionary<string, JsonNode?> p)
    {
        var record = Find(_inbound, p, "InboundConnector");
        if (Text(p, "ConnectorType") is { } type && !type.Equals(record.Text("ConnectorType"), StringComparison.OrdinalIgnoreCase))
            throw new ExoError(400, "Microsoft.Exchange.Management.Tasks.ErrorInboundConnectorConnectorTypeCannotChangeException",
                "The ConnectorType of an inbound connector can't be changed. Remove the connector and create a new one.");
        if (Text(p, "Name") is { } rename && !rename.Equals(record.Name, StringComparison.OrdinalIgnoreCase))
            Unique(_inbound, rename, "inbound connector");
        var copy = record.Clone();
        Apply(copy, "Set-InboundConnector", p, "Identity");
        CheckInbound(copy);
        if (OnPremisesInboundProhibited && IsOnPremises(copy))
        {
            _warnings.Add(CannotEnableWarning);
            copy.Props["Enabled"] = false;
        }
        record.Props = copy.Props;
    }

    private static bool IsOnPremises(ExoRecord connector) => "OnPremises".Equals(connector.Text("ConnectorType"), StringComparison.OrdinalIgnoreCase);

    private static void CheckInbound(ExoRecord record)
    {
        if (record.Bool("RestrictDomainsToIPAddresses") == true && record.List("SenderIPAddresses").Count == 0)
            throw ExoError.Validation("RestrictDomainsToIPAddresses is $true but SenderIPAddresses is empty: specify the IP addresses of the sending servers.");
    }

    private JsonObject NewOutboundConnector(Dictionary<string, JsonNode?> p)
    {
        var name = Text(p, "Name")!;
        Unique(_outbound, name, "outbound connector");
        var record = new ExoRecord(Defaults("New-OutboundConnector"));
        record.Props["ConnectorType"] = "Partner";
        Apply(record, "New-OutboundConnector", p);
        CheckOutbound(record);
        _outbound.Add(record);
        return Connector(record, "OutboundConnector");
    }

    private void SetOutboundConnector(Dictionary<string, JsonNode?> p)
    {
        var record = Find(_outbound, p, "OutboundConnector");
        var oldName = record.Name;
        if (Text(p, "Name") is { } rename && !rename.Equals(oldName, StringComparison.OrdinalIgnoreCase))
            Unique(_outbound, rename, "outbound connector");
        var copy = record.Clone();
        Apply(copy, "Set-OutboundConnector", p, "Identity");
        CheckOutbound(copy);
        record.Props = copy.Props;
        // Rules refer to the connector itself, so they follow a rename.
        foreach (var rule in _rules.Where(r => oldName.Equals(r.Text("RouteMessageOutboundConnector"), StringComparison.OrdinalIgnoreCase)))
            rule.Props["RouteMessageOutboundConnector"] = record.Name;
    }

    private static void CheckOutbound(ExoRecord record)
    {
        if (record.Bool("UseMXRecord") == false && record.List("SmartHosts").Count == 0)
            throw ExoError.Validation("SmartHosts must be specified when UseMXRecord is $false.");
        if (record.Bool("UseMXRecord") == true && record.List("SmartHosts").Count > 0)
            throw ExoError.Validation("SmartHosts can't be specified when UseMXRecord is $true.");
    }

    private void RemoveOutboundConnector(Dictionary<string, JsonNode?> p)
    {
        var record = Find(_outbound, p, "OutboundConnector");
        var users = _rules.Where(r => record.Name.Equals(r.Text("RouteMessageOutboundConnector"), StringComparison.OrdinalIgnoreCase)).Select(r => r.Name).ToArray();
        if (users.Length > 0)
            throw ExoError.Validation($"The outbound connector '{record.Name}' can't be removed because it's used by transport rule(s): {string.Join(", ", users)}.");
        _outbound.Remove(record);
    }

    private IReadOnlyList<JsonObject> GetOutboundConnectors(Dictionary<string, JsonNode?> p)
    {
        var all = Get(_outbound, p, "OutboundConnector", Connector);
        if (p.TryGetValue("IsTransportRuleScoped", out var scoped) && scoped is not null)
            return all.Where(c => c["IsTransportRuleScoped"]?.GetValue<bool>() == scoped.GetValue<bool>()).ToArray();
        return all;
    }

    // ---- transport rules -------------------------------------------------------------------

    private IReadOnlyList<JsonObject> GetTransportRules(Dictionary<string, JsonNode?> p)
    {
        var all = Get(_rules, p, "TransportRule", (r, _) => Rule(r));
        if (Text(p, "State") is { } state)
            return all.Where(r => state.Equals(r["State"]?.GetValue<string>(), StringComparison.OrdinalIgnoreCase)).ToArray();
        return all;
    }

    /// <summary>
    /// Parameters Exchange takes only together, in one call (New-TransportRule.md: "you also need to use …"). Learn
    /// does not quote the error; the emulator's words are its own.
    /// </summary>
    private static readonly (string First, string Second)[] RulePairs =
    [
        ("SetHeaderName", "SetHeaderValue"),
        ("HeaderContainsMessageHeader", "HeaderContainsWords"),
        ("ExceptIfHeaderContainsMessageHeader", "ExceptIfHeaderContainsWords"),
        ("HeaderMatchesMessageHeader", "HeaderMatchesPatterns"),
        ("ExceptIfHeaderMatchesMessageHeader", "ExceptIfHeaderMatchesPatterns"),
    ];

    private static void CheckRulePairs(Dictionary<string, JsonNode?> p)
    {
        foreach (var (first, second) in RulePairs)
        {
            if (p.ContainsKey(first) != p.ContainsKey(second))
            {
                var (given, missing) = p.ContainsKey(first) ? (first, second) : (second, first);
                throw ExoError.Validation($"The {given} parameter can't be used without the {missing} parameter. Specify both.");
            }
        }
    }

    private JsonObject NewTransportRule(Dictionary<string, JsonNode?> p)
    {
        CheckRulePairs(p);
        var name = Text(p, "Name")!;
        Unique(_rules, name, "transport rule");
        var priority = _rules.Count;
        if (p.TryGetValue("Priority", out var given) && given is not null)
        {
            priority = given.GetValue<int>();
            // A new rule may take any slot from 0 (top) to N (after the N existing rules).
            if (priority < 0 || priority > _rules.Count)
                throw ExoError.Validation($"The value of Priority must be between 0 and {_rules.Count}.");
        }
        var record = new ExoRecord(Defaults("New-TransportRule"));
        var enabled = p.TryGetValue("Enabled", out var e) && e is not null ? e.GetValue<bool>() : true;
        Apply(record, "New-TransportRule", p, "Priority", "Enabled");
        record.Props["State"] = enabled ? "Enabled" : "Disabled";
        CheckRule(record);
        _rules.Insert(priority, record);
        return Rule(record);
    }

    private void SetTransportRule(Dictionary<string, JsonNode?> p)
    {
        CheckRulePairs(p);
        var record = Find(_rules, p, "TransportRule");
        if (Text(p, "Name") is { } rename && !rename.Equals(record.Name, StringComparison.OrdinalIgnoreCase))
            Unique(_rules, rename, "transport rule");
        int? priority = null;
        if (p.TryGetValue("Priority", out var given) && given is not null)
        {
            priority = given.GetValue<int>();
            if (priority < 0 || priority >= _rules.Count)
                throw ExoError.Validation($"The value of Priority must be between 0 and {_rules.Count - 1}.");
        }
        var copy = record.Clone();
        Apply(copy, "Set-TransportRule", p, "Identity", "Priority");
        CheckRule(copy);
        record.Props = copy.Props;
        if (priority is { } moveTo)
        {
            // Exchange moves the rule to the slot and shifts the others.
            _rules.Remove(record);
            _rules.Insert(moveTo, record);
        }
    }

    private void EnableTransportRule(Dictionary<string, JsonNode?> p, bool enable)
    {
        var record = Find(_rules, p, "TransportRule");
        record.Props["State"] = enable ? "Enabled" : "Disabled";
        if (enable && Text(p, "Mode") is { } mode)
            record.Props["Mode"] = mode;
    }

    private void CheckRule(ExoRecord rule)
    {
        if (rule.Text("RouteMessageOutboundConnector") is { } connector)
        {
            var target = _outbound.FirstOrDefault(c => c.Matches(connector))
                ?? throw ExoError.NotFound("outbound connectors", connector);
            rule.Props["RouteMessageOutboundConnector"] = target.Name;
        }
        Pair(rule, "SetHeaderName", "SetHeaderValue");
        Pair(rule, "HeaderContainsMessageHeader", "HeaderContainsWords");
        Pair(rule, "ExceptIfHeaderContainsMessageHeader", "ExceptIfHeaderContainsWords");
        Pair(rule, "HeaderMatchesMessageHeader", "HeaderMatchesPatterns");
        Pair(rule, "ExceptIfHeaderMatchesMessageHeader", "ExceptIfHeaderMatchesPatterns");
    }

    private static void Pair(ExoRecord rule, string a, string b)
    {
        if (rule.IsSet(a) != rule.IsSet(b))
            throw ExoError.Validation($"The {a} and {b} parameters must be used together.");
    }

    // ---- Defender and organisation settings ----------------------------------------------

    private JsonObject ArcConfig() => new()
    {
        ["Identity"] = $"{Organization}\\Default",
        // Exchange returns the trusted sealers as one comma-separated string.
        ["ArcTrustedSealers"] = _arcSealers.Count == 0 ? null : string.Join(",", _arcSealers),
    };

    private void SetArcConfig(Dictionary<string, JsonNode?> p)
    {
        var identity = Text(p, "Identity")!;
        if (!identity.Equals("Default", StringComparison.OrdinalIgnoreCase) && !identity.Equals($"{TenantId}\\Default", StringComparison.OrdinalIgnoreCase))
            throw ExoError.NotFound("ArcConfig", identity);
        var sealers = List(p["ArcTrustedSealers"]).Select(s => s.Trim()).Where(s => s.Length > 0).ToList();
        foreach (var sealer in sealers)
        {
            if (Uri.CheckHostName(sealer) != UriHostNameType.Dns || !sealer.Contains('.'))
                throw ExoError.Validation($"'{sealer}' isn't a valid domain name for ArcTrustedSealers.");
        }
        // The parameter replaces the whole list; " " empties it.
        _arcSealers.Clear();
        _arcSealers.AddRange(sealers.Distinct(StringComparer.OrdinalIgnoreCase));
    }

    private IReadOnlyList<JsonObject> GetConnectionFilterPolicy(Dictionary<string, JsonNode?> p)
    {
        if (Text(p, "Identity") is { } identity && !identity.Equals("Default", StringComparison.OrdinalIgnoreCase))
            throw ExoError.NotFound("HostedConnectionFilterPolicy", identity);
        return [new JsonObject
        {
            ["Name"] = "Default", ["Identity"] = "Default", ["IsDefault"] = true, ["EnableSafeList"] = false,
            ["IPAllowList@odata.type"] = "#Collection(String)",
            ["IPAllowList"] = new JsonArray([.. _ipAllowList.Select(s => (JsonNode)JsonValue.Create(s))]),
            ["IPBlockList@odata.type"] = "#Collection(String)",
            ["IPBlockList"] = new JsonArray([.. _ipBlockList.Select(s => (JsonNode)JsonValue.Create(s))]),
        }];
    }

    private void SetConnectionFilterPolicy(Dictionary<string, JsonNode?> p)
    {
        var identity = Text(p, "Identity")!;
        if (!identity.Equals("Default", StringComparison.OrdinalIgnoreCase))
            throw ExoError.NotFound("HostedConnectionFilterPolicy", identity);
        foreach (var (name, list) in new[] { ("IPAllowList", _ipAllowList), ("IPBlockList", _ipBlockList) })
        {
            if (!p.TryGetValue(name, out var value))
                continue;
            var updated = new List<string>(list);
            if (value is JsonObject table)
            {
                foreach (var add in List(table["Add"]))
                    if (!updated.Contains(add, StringComparer.OrdinalIgnoreCase))
                        updated.Add(add);
                foreach (var remove in List(table["Remove"]))
                    updated.RemoveAll(x => x.Equals(remove, StringComparison.OrdinalIgnoreCase));
            }
            else
            {
                updated = List(value).Distinct(StringComparer.OrdinalIgnoreCase).ToList();
            }
            if (updated.Count > 1273)
                throw ExoError.Validation($"{name} can hold at most 1273 entries.");
            list.Clear();
            list.AddRange(updated);
        }
    }

    private IReadOnlyList<JsonObject> GetSpoofItems(Dictionary<string, JsonNode?> p)
    {
        IEnumerable<ExoRecord> items = _spoof;
        if (Text(p, "Action") is { } action)
            items = items.Where(i => action.Equals(i.Text("Action"), StringComparison.OrdinalIgnoreCase));
        if (Text(p, "SpoofType") is { } type)
            items = items.Where(i => type.Equals(i.Text("SpoofType"), StringComparison.OrdinalIgnoreCase));
        return items.Select(i => Plain(i, "Spoof")).ToArray();
    }

    private JsonObject NewSpoofItem(Dictionary<string, JsonNode?> p)
    {
        var user = Text(p, "SpoofedUser")!;
        var infrastructure = Text(p, "SendingInfrastructure")!;
        var type = Text(p, "SpoofType")!;
        if (user.Contains('*') && infrastructure.Contains('*'))
            throw ExoError.Validation("A wildcard can be used in SpoofedUser or SendingInfrastructure, not both.");
        if (_spoof.Any(i => user.Equals(i.Text("SpoofedUser"), StringComparison.OrdinalIgnoreCase)
            && infrastructure.Equals(i.Text("SendingInfrastructure"), StringComparison.OrdinalIgnoreCase)
            && type.Equals(i.Text("SpoofType"), StringComparison.OrdinalIgnoreCase)))
            throw ExoError.AlreadyExists($"An entry for {user}, {infrastructure} ({type}) already exists.");
        if (_spoof.Count >= 1024)
            throw ExoError.Validation("The tenant allow/block list can hold at most 1024 spoofed sender entries.");
        var record = new ExoRecord(new JsonObject
        {
            ["SpoofedUser"] = user,
            ["SendingInfrastructure"] = infrastructure,
            ["SpoofType"] = type,
            ["Action"] = Text(p, "Action"),
        });
        var id = record.Guid.ToString("N").ToUpperInvariant();
        record.Props["Name"] = id;
        record.Props["ObjectId"] = id;
        _spoof.Add(record);
        return Plain(record, "Spoof");
    }

    private void SetSpoofItems(Dictionary<string, JsonNode?> p)
    {
        CheckDefault(p, "TenantAllowBlockListSpoofItems");
        foreach (var id in List(p["Ids"]))
            FindSpoof(id).Props["Action"] = Text(p, "Action");
    }

    private void RemoveSpoofItems(Dictionary<string, JsonNode?> p)
    {
        CheckDefault(p, "TenantAllowBlockListSpoofItems");
        foreach (var item in List(p["Ids"]).Select(FindSpoof).ToArray())
            _spoof.Remove(item);
    }

    private ExoRecord FindSpoof(string id) =>
        _spoof.FirstOrDefault(i => i.Name.Equals(id, StringComparison.OrdinalIgnoreCase)) ?? throw ExoError.NotFound("TenantAllowBlockListSpoofItems", id);

    private static void CheckDefault(Dictionary<string, JsonNode?> p, string what)
    {
        if (Text(p, "Identity") is { } identity && !identity.Equals("Default", StringComparison.OrdinalIgnoreCase))
            throw ExoError.NotFound(what, identity);
    }

    // ---- helpers ---------------------------------------------------------------------------

    private static IReadOnlyList<JsonObject> Nothing(Action action)
    {
        action();
        return [];
    }

    private static IReadOnlyList<JsonObject> Get(List<ExoRecord> list, Dictionary<string, JsonNode?> p, string what, Func<ExoRecord, string, JsonObject> output)
    {
        if (p.ContainsKey("Identity") && p["Identity"] is not null)
            return [output(Find(list, p, what), what)];
        return list.Select(r => output(r, what)).ToArray();
    }

    private static ExoRecord Find(List<ExoRecord> list, Dictionary<string, JsonNode?> p, string what)
    {
        var identity = Text(p, "Identity")!;
        return list.FirstOrDefault(r => r.Matches(identity)) ?? throw ExoError.NotFound(what + "s", identity);
    }

    private static void Unique(List<ExoRecord> list, string name, string what)
    {
        if (list.Any(r => r.Name.Equals(name, StringComparison.OrdinalIgnoreCase)))
            throw ExoError.AlreadyExists($"A {what} with the name '{name}' already exists. Choose a different name.");
    }

    /// <summary>The defaults the reference documents for a New- cmdlet's Boolean and enumerated parameters.</summary>
    private JsonObject Defaults(string cmdlet)
    {
        var props = new JsonObject();
        foreach (var p in _schema.Parameters(cmdlet))
        {
            if (p.Default is null || p.Name is "Enabled" or "Priority" || p.RulePart is "condition" or "exception")
                continue;
            if (p.Type == "Boolean" && p.Default is "$true" or "$false")
                props[p.Name] = p.Default == "$true";
            else if (p.Values is { } values && values.Contains(p.Default) && p.Default != "$null")
                props[p.Name] = p.Default;
        }
        return props;
    }

    /// <summary>Sets the given parameters on the record; a single value of a multi-valued parameter is stored as a list, null clears.</summary>
    private void Apply(ExoRecord record, string cmdlet, Dictionary<string, JsonNode?> p, params string[] skip)
    {
        var listTypes = _schema.Parameters(cmdlet).Where(x => x.Type is "MultiValuedProperty" or "String[]" or "Word[]" or "Pattern[]" or "RecipientIdParameter[]")
            .Select(x => x.Name).ToHashSet(StringComparer.OrdinalIgnoreCase);
        foreach (var (name, value) in p)
        {
            if (skip.Contains(name, StringComparer.OrdinalIgnoreCase))
                continue;
            record.Props[name] = value is JsonValue v && v.GetValueKind() == JsonValueKind.String && listTypes.Contains(name)
                ? new JsonArray(JsonValue.Create(v.GetValue<string>()))
                : value?.DeepClone();
        }
    }

    private static string? Text(Dictionary<string, JsonNode?> p, string name) =>
        p.TryGetValue(name, out var v) && v is JsonValue value && value.GetValueKind() == JsonValueKind.String ? value.GetValue<string>() : null;

    private static List<string> List(JsonNode? node) => node switch
    {
        null => [],
        JsonArray a => a.Where(x => x is not null).Select(x => x!.GetValue<string>()).ToList(),
        JsonValue v when v.GetValueKind() == JsonValueKind.String => [v.GetValue<string>()],
        _ => [],
    };

    private static JsonObject Plain(ExoRecord record, string what)
    {
        var o = record.Output();
        o["Identity"] = record.Name;
        o["Guid"] = record.Guid.ToString();
        return o;
    }

    /// <summary>A connector as Get-*Connector shows it; sender domains in Exchange's "smtp:domain;1" form.</summary>
    private static JsonObject Connector(ExoRecord record, string what)
    {
        var o = Plain(record, what);
        if (o["SenderDomains"] is JsonArray domains)
            o["SenderDomains"] = new JsonArray([.. domains.Select(d => (JsonNode)JsonValue.Create($"smtp:{d!.GetValue<string>()};1"))]);
        return o;
    }

    private JsonObject Rule(ExoRecord record)
    {
        var o = Plain(record, "TransportRule");
        o["Priority"] = _rules.IndexOf(record);
        return o;
    }
}

/// <summary>An object in the emulated tenant: its properties under their cmdlet parameter names.</summary>
internal sealed class ExoRecord(JsonObject props, Guid? guid = null)
{
    public Guid Guid { get; } = guid ?? Guid.NewGuid();

    public JsonObject Props { get; set; } = props;

    public string Name => Text("Name") ?? "";

    public bool Matches(string identity) =>
        Name.Equals(identity, StringComparison.OrdinalIgnoreCase) || Guid.ToString().Equals(identity, StringComparison.OrdinalIgnoreCase);

    public string? Text(string name) =>
        Props[name] is JsonValue v && v.GetValueKind() == JsonValueKind.String ? v.GetValue<string>() : null;

    public bool? Bool(string name) =>
        Props[name] is JsonValue v && v.GetValueKind() is JsonValueKind.True or JsonValueKind.False ? v.GetValue<bool>() : null;

    public IReadOnlyList<string> List(string name) => Props[name] switch
    {
        JsonArray a => a.Select(x => x!.ToString()).ToArray(),
        JsonValue v when v.GetValueKind() == JsonValueKind.String => [v.GetValue<string>()],
        _ => [],
    };

    public bool IsSet(string name) => Props[name] switch
    {
        null => false,
        JsonArray a => a.Count > 0,
        JsonValue v when v.GetValueKind() == JsonValueKind.False => false,
        JsonValue v when v.GetValueKind() == JsonValueKind.String => v.GetValue<string>().Length > 0,
        _ => true,
    };

    public ExoRecord Clone() => new((JsonObject)Props.DeepClone(), Guid);

    /// <summary>The properties with Exchange's OData annotation beside each multi-valued one.</summary>
    public JsonObject Output()
    {
        var o = new JsonObject();
        foreach (var (name, value) in Props)
        {
            if (value is JsonArray)
                o[name + "@odata.type"] = "#Collection(String)";
            o[name] = value?.DeepClone();
        }
        return o;
    }
}

/// <summary>What a cmdlet returned: its objects, and the warnings Exchange adds to the answer (@adminapi.warnings).</summary>
public sealed class CmdletOutput(IReadOnlyList<JsonObject> objects, IReadOnlyList<string> warnings) : IReadOnlyList<JsonObject>
{
    public IReadOnlyList<string> Warnings { get; } = warnings;

    public JsonObject this[int index] => objects[index];

    public int Count => objects.Count;

    public IEnumerator<JsonObject> GetEnumerator() => objects.GetEnumerator();

    System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
}
