using Postern.Core;
using Postern.M365.Blueprints;
using Postern.M365.Client;

namespace Postern.M365.Reconcile;

/// <summary>
/// The operations behind <c>postern m365 plan|apply|verify|activate|deactivate|remove</c>: each reads
/// the tenant as it is now, then decides. Nothing is cached between commands, so every command is
/// safe to repeat and carries on from wherever an earlier one stopped.
/// </summary>
public sealed class Provisioner(IExchangeOnline exchange)
{
    public async Task<Plan> PlanAsync(Blueprint blueprint, bool activated, CancellationToken cancellationToken)
    {
        var state = await TenantState.ReadAsync(exchange, cancellationToken).ConfigureAwait(false);
        return Planner.Create(blueprint, state, activated);
    }

    /// <summary>Plans, then runs the changing steps in order; refuses to start when a step needs the relay key and it was not given.</summary>
    public async Task<(Plan Plan, ExecutionResult Result)> ApplyAsync(Blueprint blueprint, bool activated, TextWriter? progress, CancellationToken cancellationToken)
    {
        var plan = await PlanAsync(blueprint, activated, cancellationToken).ConfigureAwait(false);
        var needKey = plan.Steps.Where(s => s.NeedsRelayKey).Select(s => s.Title).ToArray();
        if (needKey.Length > 0)
            throw new PosternException($"{string.Join(", ", needKey)} must carry the relay key of tenant '{blueprint.Tenant.Name}': give it with --relay-key-file FILE or POSTERN_RELAY_KEY; nothing was changed");
        var result = await RunChangesAsync(blueprint, activated, plan.Changes.ToArray(), progress, cancellationToken).ConfigureAwait(false);
        return (plan, result);
    }

    /// <summary>
    /// Runs a plan's changing steps; a change whose answer was lost is read back before it is tried again, never
    /// repeated blindly. Then reads the tenant once more: a step's item that is still not as the blueprint says (an
    /// OnPremises inbound connector Exchange Online created disabled) fails the run, naming the item, what differs
    /// and what Exchange Online warned.
    /// </summary>
    public async Task<ExecutionResult> RunChangesAsync(Blueprint blueprint, bool activated, IReadOnlyList<PlanStep> steps, TextWriter? progress, CancellationToken cancellationToken)
    {
        var result = await Executor.RunAsync(steps, exchange, progress, cancellationToken,
            (step, token) => RecheckAsync(blueprint, activated, step, token)).ConfigureAwait(false);
        if (!result.Succeeded || result.Done.Count == 0)
            return result;
        var state = await TenantState.ReadAsync(exchange, cancellationToken).ConfigureAwait(false);
        var after = Planner.Create(blueprint, state, activated);
        // An item can have two steps (create, then move or enable); the last one stands for it.
        var changed = result.Done.GroupBy(s => s.Title, StringComparer.OrdinalIgnoreCase).ToDictionary(g => g.Key, g => g.Last(), StringComparer.OrdinalIgnoreCase);
        if (after.Changes.FirstOrDefault(s => changed.ContainsKey(s.Title)) is not { } unsettled)
            return result;
        var warned = result.Warnings.Where(w => w.Step.Title.Equals(unsettled.Title, StringComparison.OrdinalIgnoreCase)).Select(w => w.Warning).Distinct().ToArray();
        var error = $"{unsettled.Title} is not as applied afterwards: {Describe(unsettled)}"
            + (warned.Length > 0 ? $"; Exchange Online warned: {string.Join(" ", warned)}" : "");
        var failed = changed[unsettled.Title];
        return new ExecutionResult
        {
            Done = result.Done.Where(s => !s.Title.Equals(failed.Title, StringComparison.OrdinalIgnoreCase)).ToArray(),
            Failed = failed,
            Error = error,
            NotDone = [],
            Warnings = result.Warnings,
        };
    }

    /// <summary>The step <paramref name="step"/>'s item still needs, from the tenant as it is now; null when none.</summary>
    private async Task<PlanStep?> RecheckAsync(Blueprint blueprint, bool activated, PlanStep step, CancellationToken cancellationToken)
    {
        var state = await TenantState.ReadAsync(exchange, cancellationToken).ConfigureAwait(false);
        return Planner.Create(blueprint, state, activated).Changes
            .FirstOrDefault(s => s.Title.Equals(step.Title, StringComparison.OrdinalIgnoreCase));
    }

    private static string Describe(PlanStep step) =>
        step.Changes.Count > 0
            ? string.Join(", ", step.Changes.Select(d => $"{d.Parameter} is {d.Actual}, must be {d.Expected}"))
            : step.Summary;

    public async Task<VerifyReport> VerifyAsync(Blueprint blueprint, CancellationToken cancellationToken, IReadOnlyDictionary<string, string>? exchangeWarnings = null)
    {
        var state = await TenantState.ReadAsync(exchange, cancellationToken).ConfigureAwait(false);
        return Verifier.Verify(blueprint, state, exchangeWarnings);
    }

    public Task<ExecutionResult> ActivateAsync(Blueprint blueprint, TextWriter? progress, CancellationToken cancellationToken) =>
        RunAsync(Lifecycle.Activate, blueprint, progress, cancellationToken);

    public Task<ExecutionResult> DeactivateAsync(Blueprint blueprint, TextWriter? progress, CancellationToken cancellationToken) =>
        RunAsync(Lifecycle.Deactivate, blueprint, progress, cancellationToken);

    public Task<ExecutionResult> RemoveAsync(Blueprint blueprint, TextWriter? progress, CancellationToken cancellationToken) =>
        RunAsync(Lifecycle.Remove, blueprint, progress, cancellationToken);

    private async Task<ExecutionResult> RunAsync(Func<Blueprint, TenantState, IReadOnlyList<PlanStep>> steps, Blueprint blueprint, TextWriter? progress, CancellationToken cancellationToken)
    {
        var state = await TenantState.ReadAsync(exchange, cancellationToken).ConfigureAwait(false);
        var changes = steps(blueprint, state).Where(s => s.ChangesSomething).ToArray();
        return await Executor.RunAsync(changes, exchange, progress, cancellationToken).ConfigureAwait(false);
    }
}
