using System.Text.Json;
using System.Text.Json.Nodes;
using Postern.Core.Tenants;
using Postern.M365.Blueprints;

namespace Postern.M365.Reconcile;

/// <summary>Plans, verify reports and apply results as text for people and JSON for machines.</summary>
public static class Reports
{
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    public static void WritePlan(TextWriter output, Plan plan)
    {
        var blueprint = plan.Blueprint;
        output.WriteLine($"Plan for {blueprint.Describe()}:");
        var number = 0;
        foreach (var step in plan.Steps)
        {
            number++;
            output.WriteLine($"{number,3}. {step.Title}: {step.Summary}");
            foreach (var change in step.Changes)
                output.WriteLine($"       {change.Parameter}: is {change.Actual}, should be {change.Expected}");
            if (step.NeedsRelayKey)
                output.WriteLine("       (needs the relay key)");
        }
        WriteList(output, "Warnings", plan.Warnings);
        WriteList(output, "Advice", plan.Advice);
        var changes = plan.Changes.Count();
        output.WriteLine(changes == 0
            ? "Nothing to change."
            : $"{changes} change{(changes == 1 ? "" : "s")}; 'postern m365 apply {blueprint.Tenant.Name}' makes {(changes == 1 ? "it" : "them")}.");
    }

    public static void WriteVerify(TextWriter output, VerifyReport report)
    {
        output.WriteLine($"Verify {report.Blueprint.Describe()}:");
        foreach (var item in report.Items)
        {
            output.WriteLine($"  {Status(item.Status),-9} {item.Title}{(item.Note is null ? "" : $" ({item.Note})")}");
            foreach (var difference in item.Differences)
                output.WriteLine($"            {difference.Parameter} is {difference.Actual}, should be {difference.Expected}");
        }
        output.WriteLine(report.Conflicts.Count == 0 ? "Conflicts: none" : "Conflicts:");
        foreach (var conflict in report.Conflicts)
            output.WriteLine($"  - {conflict.Subject}: {conflict.Problem}");
        var bad = report.Items.Count(i => i.Status != ItemStatus.Present);
        output.WriteLine(report.Ok
            ? $"Result: all {report.Items.Count} items as they should be, no conflict."
            : $"Result: {bad} of {report.Items.Count} items not as they should be, {report.Conflicts.Count} conflict{(report.Conflicts.Count == 1 ? "" : "s")}.");
    }

    /// <summary>After apply, remove, activate or deactivate: what was done and what was not.</summary>
    public static void WriteResult(TextWriter output, ExecutionResult result, string again)
    {
        if (result.Succeeded)
            return;
        output.WriteLine($"Stopped at {result.Failed!.Title}: {result.Error}");
        output.WriteLine(result.Done.Count == 0 ? "Done: nothing." : "Done: " + string.Join("; ", result.Done.Select(s => $"{s.Action.ToString().ToLowerInvariant()} {s.Title}")) + ".");
        output.WriteLine("Not done: " + string.Join("; ", new[] { result.Failed }.Concat(result.NotDone).Select(s => $"{s.Action.ToString().ToLowerInvariant()} {s.Title}")) + ".");
        output.WriteLine($"Fix the cause and run '{again}' again: it carries on from the tenant as it is.");
    }

    public static string PlanJson(Plan plan)
    {
        var o = Header(plan.Blueprint);
        o["changes"] = plan.Changes.Count();
        o["needsRelayKey"] = plan.NeedsRelayKey;
        o["steps"] = new JsonArray([.. plan.Steps.Select(s => (JsonNode)new JsonObject
        {
            ["action"] = s.Action.ToString().ToLowerInvariant(),
            ["kind"] = s.Kind,
            ["name"] = s.Name,
            ["summary"] = s.Summary,
            ["changes"] = Differences(s.Changes),
            ["needsRelayKey"] = s.NeedsRelayKey,
            ["notes"] = Strings(s.Notes),
        })]);
        o["warnings"] = Strings(plan.Warnings);
        o["advice"] = Strings(plan.Advice);
        return o.ToJsonString(Indented);
    }

    public static string VerifyJson(VerifyReport report)
    {
        var o = Header(report.Blueprint);
        o["ok"] = report.Ok;
        o["items"] = new JsonArray([.. report.Items.Select(i => (JsonNode)new JsonObject
        {
            ["kind"] = i.Kind,
            ["name"] = i.Name,
            ["status"] = Status(i.Status),
            ["differences"] = Differences(i.Differences),
            ["note"] = i.Note,
        })]);
        o["conflicts"] = new JsonArray([.. report.Conflicts.Select(c => (JsonNode)new JsonObject { ["subject"] = c.Subject, ["problem"] = c.Problem })]);
        return o.ToJsonString(Indented);
    }

    public static string Status(ItemStatus status) => status.ToString().ToLowerInvariant();

    private static JsonObject Header(Blueprint blueprint) => new()
    {
        ["tenant"] = new JsonObject { ["name"] = blueprint.Tenant.Name, ["id"] = blueprint.Tenant.Id.ToString() },
        ["profile"] = ProvisioningProfiles.Format(blueprint.Profile),
        ["region"] = blueprint.Region.Region,
        ["outbound"] = OutboundModes.Format(blueprint.Outbound),
        ["scope"] = new JsonObject
        {
            ["allUsers"] = blueprint.Scope.IsAllUsers,
            ["recipients"] = Strings(blueprint.Scope.Recipients),
            ["senders"] = Strings(blueprint.Scope.Senders),
        },
    };

    private static JsonArray Differences(IEnumerable<Difference> differences) =>
        new([.. differences.Select(d => (JsonNode)new JsonObject { ["parameter"] = d.Parameter, ["expected"] = d.Expected, ["actual"] = d.Actual })]);

    private static JsonArray Strings(IEnumerable<string> values) => new([.. values.Select(v => (JsonNode)JsonValue.Create(v))]);

    private static void WriteList(TextWriter output, string title, IReadOnlyList<string> lines)
    {
        if (lines.Count == 0)
            return;
        output.WriteLine($"{title}:");
        foreach (var line in lines)
            output.WriteLine($"  - {line}");
    }
}
