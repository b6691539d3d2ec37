using System.CommandLine;
using Postern.Core;
using Postern.Core.Policy;
using Postern.Core.Scanning;
using Postern.Core.Scanning.Engines;

namespace Postern.Cli;

/// <summary>`postern policy list|add|remove` and `postern policy vips`: what scanning findings lead to.</summary>
public static class PolicyCommands
{
    public static Command Create(CliContext cli)
    {
        var policy = new Command("policy", "A tenant's policy rules (tried by priority, before the built-in defaults) and VIPs");
        policy.Add(List(cli));
        policy.Add(Add(cli));
        policy.Add(Remove(cli));
        policy.Add(Vips(cli));
        return policy;
    }

    private static Command List(CliContext cli)
    {
        var tenant = new Argument<string>("TENANT") { Description = "Tenant name or id" };
        var command = new Command("list", "List the tenant's rules and the built-in defaults, in the order they are tried") { tenant };
        command.SetAction(cli.Run(result =>
        {
            var store = cli.Tenants(result);
            var t = store.GetTenant(result.GetValue(tenant)!);
            var own = store.ListPolicyRules().GetValueOrDefault(t.Id) ?? [];
            var rows = own.Select(r => (r, "tenant")).Concat(DefaultPolicy.Rules.Select(r => (r, "built-in"))).OrderBy(x => x.r.Priority)
                .Select(x => new[] { x.r.Priority.ToString(), x.r.Name, x.Item2, Describe(x.r.When), x.r.Then.Action.ToString().ToLowerInvariant() + (x.r.Then.SubjectTag is { } tag ? $" {tag}" : "") });
            TextTable.Write(cli.Out, ["PRIORITY", "NAME", "FROM", "WHEN", "THEN"], rows);
            var vips = store.ListVips().GetValueOrDefault(t.Id) ?? [];
            cli.Out.WriteLine(vips.Count == 0 ? "VIPs: none" : "VIPs: " + string.Join(", ", vips));
            return 0;
        }));
        return command;
    }

    private static Command Add(CliContext cli)
    {
        var tenant = new Argument<string>("TENANT") { Description = "Tenant name or id" };
        var name = new Option<string>("--name") { Description = "Rule name (adding a rule with an existing name replaces it)", Required = true };
        var priority = new Option<int>("--priority") { Description = "Lower runs first; built-in defaults start at 1000", DefaultValueFactory = _ => 100 };
        var direction = new Option<string?>("--direction") { Description = "inbound or outbound" };
        var sender = new Option<string[]>("--sender") { Description = "Envelope sender pattern, e.g. *@partner.com (repeatable)" };
        var recipient = new Option<string[]>("--recipient") { Description = "Recipient pattern (repeatable)" };
        var header = new Option<string?>("--header") { Description = "NAME=REGEX: a header whose value matches" };
        var words = new Option<string[]>("--body-word") { Description = "A word in the subject or body (repeatable; any matches)" };
        var size = new Option<long?>("--size-above") { Description = "Message size in bytes" };
        var attachment = new Option<string[]>("--attachment-name") { Description = "Attachment file name pattern, e.g. *.iso (repeatable)" };
        var attachmentType = new Option<string[]>("--attachment-type")
        {
            Description = "True attachment type by content, also inside archives, e.g. pe,script-js (comma-separated or repeatable; any matches)",
        };
        var finding = new Option<string[]>("--finding") { Description = "Finding kind, e.g. virus, spam, attachment-executable (repeatable; any matches)" };
        var score = new Option<double?>("--spam-score-at-least") { Description = "Spam score threshold" };
        var action = new Option<string>("--action") { Description = "deliver, tag, quarantine, reject or defer", Required = true };
        var subjectTag = new Option<string?>("--subject-tag") { Description = "With tag: text put before the subject" };
        var reply = new Option<string?>("--reply") { Description = "With reject or defer: the SMTP reply text" };
        var command = new Command("add", "Add or replace a policy rule")
            { tenant, name, priority, direction, sender, recipient, header, words, size, attachment, attachmentType, finding, score, action, subjectTag, reply };
        command.SetAction(cli.Run(result =>
        {
            var store = cli.Tenants(result);
            var t = store.GetTenant(result.GetValue(tenant)!);
            var dir = result.GetValue(direction)?.ToLowerInvariant();
            if (dir is not (null or "inbound" or "outbound"))
                throw new PosternException($"--direction '{dir}' is not inbound or outbound");
            HeaderCondition? headerCondition = null;
            if (result.GetValue(header) is { } h)
            {
                var eq = h.IndexOf('=');
                if (eq <= 0)
                    throw new PosternException($"--header '{h}' is not NAME=REGEX");
                headerCondition = new HeaderCondition(h[..eq].Trim(), h[(eq + 1)..]);
                try
                {
                    _ = new System.Text.RegularExpressions.Regex(headerCondition.Pattern);
                }
                catch (ArgumentException ex)
                {
                    throw new PosternException($"--header '{h}': the pattern is not a valid regular expression ({ex.Message})");
                }
            }
            var actionText = result.GetValue(action)!;
            if (!Enum.TryParse<VerdictAction>(actionText, ignoreCase: true, out var verdictAction))
                throw new PosternException($"--action '{actionText}' is not deliver, tag, quarantine, reject or defer");
            var kinds = result.GetValue(finding) ?? [];
            var known = typeof(FindingKinds).GetFields().Select(f => (string)f.GetValue(null)!).ToHashSet();
            if (kinds.FirstOrDefault(k => !known.Contains(k)) is { } unknown)
                throw new PosternException($"--finding '{unknown}' is not a finding kind ({string.Join(", ", known.Order())})");
            var types = (result.GetValue(attachmentType) ?? []).SelectMany(t => t.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
                .Select(t => t.ToLowerInvariant()).Distinct().ToArray();
            if (types.FirstOrDefault(t => !FileTypeDetector.KnownIds.Contains(t)) is { } unknownType)
                throw new PosternException($"--attachment-type '{unknownType}' is not a file type ({string.Join(", ", FileTypeDetector.KnownIds.Order())})");
            var rule = new PolicyRule
            {
                Name = result.GetValue(name)!,
                Priority = result.GetValue(priority),
                When = new RuleConditions
                {
                    Direction = dir,
                    Sender = NullIfEmpty(result.GetValue(sender)),
                    Recipient = NullIfEmpty(result.GetValue(recipient)),
                    Header = headerCondition,
                    BodyWords = NullIfEmpty(result.GetValue(words)),
                    SizeAbove = result.GetValue(size),
                    AttachmentName = NullIfEmpty(result.GetValue(attachment)),
                    AttachmentType = NullIfEmpty(types),
                    Finding = NullIfEmpty(kinds),
                    SpamScoreAtLeast = result.GetValue(score),
                },
                Then = new RuleAction { Action = verdictAction, SubjectTag = result.GetValue(subjectTag), ReplyText = result.GetValue(reply) },
            };
            store.SetPolicyRule(t, rule);
            cli.Out.WriteLine($"Rule '{rule.Name}' (priority {rule.Priority}) saved for tenant '{t.Name}': when {Describe(rule.When)} then {verdictAction.ToString().ToLowerInvariant()}.");
            return 0;
        }));
        return command;
    }

    private static Command Remove(CliContext cli)
    {
        var tenant = new Argument<string>("TENANT") { Description = "Tenant name or id" };
        var name = new Argument<string>("NAME") { Description = "Rule name" };
        var command = new Command("remove", "Remove a tenant's policy rule") { tenant, name };
        command.SetAction(cli.Run(result =>
        {
            var store = cli.Tenants(result);
            var t = store.GetTenant(result.GetValue(tenant)!);
            store.RemovePolicyRule(t, result.GetValue(name)!);
            cli.Out.WriteLine($"Rule '{result.GetValue(name)}' removed from tenant '{t.Name}'.");
            return 0;
        }));
        return command;
    }

    private static Command Vips(CliContext cli)
    {
        var tenant = new Argument<string>("TENANT") { Description = "Tenant name or id" };
        var names = new Argument<string[]>("NAME") { Description = "Display names of people whose names attackers impersonate (replaces the list)", Arity = ArgumentArity.ZeroOrMore };
        var command = new Command("vips", "Set the tenant's VIP display names for impersonation checks") { tenant, names };
        command.SetAction(cli.Run(result =>
        {
            var store = cli.Tenants(result);
            var t = store.GetTenant(result.GetValue(tenant)!);
            var list = result.GetValue(names) ?? [];
            store.SetVips(t, list);
            cli.Out.WriteLine(list.Length == 0 ? $"Tenant '{t.Name}' has no VIPs." : $"Tenant '{t.Name}' VIPs: {string.Join(", ", list)}.");
            return 0;
        }));
        return command;
    }

    private static IReadOnlyList<string>? NullIfEmpty(string[]? values) => values is { Length: > 0 } ? values : null;

    private static string Describe(RuleConditions when)
    {
        var parts = new List<string>();
        if (when.Direction is { } d) parts.Add(d);
        if (when.Sender is { } s) parts.Add("sender " + string.Join('|', s));
        if (when.Recipient is { } r) parts.Add("recipient " + string.Join('|', r));
        if (when.Header is { } h) parts.Add($"{h.Name} ~ /{h.Pattern}/");
        if (when.BodyWords is { } w) parts.Add("words " + string.Join('|', w));
        if (when.SizeAbove is { } z) parts.Add($"size > {z}");
        if (when.AttachmentName is { } a) parts.Add("attachment " + string.Join('|', a));
        if (when.AttachmentType is { } at) parts.Add("attachment type " + string.Join('|', at));
        if (when.Finding is { } f) parts.Add(string.Join('|', f));
        if (when.SpamScoreAtLeast is { } sc) parts.Add($"spam score ≥ {sc}");
        return parts.Count == 0 ? "always" : string.Join(", ", parts);
    }
}
