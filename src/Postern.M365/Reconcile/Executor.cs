using Postern.M365.Client;

namespace Postern.M365.Reconcile;

/// <summary>What running a list of steps did: the steps done, the one that failed and why, the ones not tried.</summary>
public sealed class ExecutionResult
{
    public required IReadOnlyList<PlanStep> Done { get; init; }

    public PlanStep? Failed { get; init; }

    /// <summary>One line naming the cmdlet and item, when a step failed.</summary>
    public string? Error { get; init; }

    public required IReadOnlyList<PlanStep> NotDone { get; init; }

    public bool Succeeded => Failed is null;
}

/// <summary>
/// Runs steps one after the other, in order, saying what it does; stops at the first error. Every
/// step is safe to run again (the next plan is made from the tenant as it then is), so after a
/// failure the admin fixes the cause and runs the same command again.
/// </summary>
public static class Executor
{
    public static async Task<ExecutionResult> RunAsync(IReadOnlyList<PlanStep> steps, IExchangeOnline exchange, TextWriter? progress, CancellationToken cancellationToken)
    {
        var done = new List<PlanStep>();
        for (var i = 0; i < steps.Count; i++)
        {
            var step = steps[i];
            progress?.Write($"[{i + 1}/{steps.Count}] {step.Title}: {step.Summary} ... ");
            try
            {
                foreach (var invocation in step.Invocations)
                {
                    try
                    {
                        await exchange.InvokeAsync(invocation, cancellationToken).ConfigureAwait(false);
                    }
                    catch (ExoCommandException ex) when (ex.IsNotFound && invocation.Cmdlet.StartsWith("Remove-", StringComparison.OrdinalIgnoreCase))
                    {
                        // Already gone: what the step wanted.
                    }
                }
            }
            catch (ExoCommandException ex)
            {
                progress?.WriteLine("failed");
                return new ExecutionResult { Done = done, Failed = step, Error = ex.Message, NotDone = steps.Skip(i + 1).ToArray() };
            }
            progress?.WriteLine("done");
            done.Add(step);
        }
        return new ExecutionResult { Done = done, NotDone = [] };
    }
}
