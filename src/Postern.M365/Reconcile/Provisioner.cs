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
        var result = await Executor.RunAsync(plan.Changes.ToArray(), exchange, progress, cancellationToken).ConfigureAwait(false);
        return (plan, result);
    }

    public async Task<VerifyReport> VerifyAsync(Blueprint blueprint, CancellationToken cancellationToken)
    {
        var state = await TenantState.ReadAsync(exchange, cancellationToken).ConfigureAwait(false);
        return Verifier.Verify(blueprint, state);
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
