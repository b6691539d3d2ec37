using Postern.M365.Client;

namespace Postern.M365.Reconcile;

/// <summary>A warning Exchange Online sent while carrying out a step (the call ran; it may not have done all it was asked).</summary>
public sealed record StepWarning(PlanStep Step, string Warning);

/// <summary>What running a list of steps did: the steps done, the one that failed and why, the ones not tried.</summary>
public sealed class ExecutionResult
{
    public required IReadOnlyList<PlanStep> Done { get; init; }

    public PlanStep? Failed { get; init; }

    /// <summary>One line naming the cmdlet and item, when a step failed.</summary>
    public string? Error { get; init; }

    public required IReadOnlyList<PlanStep> NotDone { get; init; }

    /// <summary>Exchange Online's warnings, with the step each came with.</summary>
    public IReadOnlyList<StepWarning> Warnings { get; init; } = [];

    public bool Succeeded => Failed is null;
}

/// <summary>
/// Runs steps one after the other, in order, saying what it does; stops at the first error. Every
/// step is safe to run again (the next plan is made from the tenant as it then is), so after a
/// failure the admin fixes the cause and runs the same command again.
/// </summary>
public static class Executor
{
    /// <summary>How many times one step is tried when its changes' answers are lost (each time read back first).</summary>
    public const int MaxAttemptsPerStep = 3;

    /// <summary>
    /// Runs <paramref name="steps"/>. <paramref name="recheck"/>, after a change whose outcome is unknown (timeout,
    /// 5xx), reads the item back and returns the step it still needs, or null when it is as it should be; without
    /// it, such a step fails.
    /// </summary>
    public static async Task<ExecutionResult> RunAsync(IReadOnlyList<PlanStep> steps, IExchangeOnline exchange, TextWriter? progress, CancellationToken cancellationToken,
        Func<PlanStep, CancellationToken, Task<PlanStep?>>? recheck = null)
    {
        var done = new List<PlanStep>();
        var warnings = new List<StepWarning>();
        for (var i = 0; i < steps.Count; i++)
        {
            var step = steps[i];
            progress?.Write($"[{i + 1}/{steps.Count}] {step.Title}: {step.Summary} ... ");
            var stepWarnings = new List<string>();
            try
            {
                var current = step;
                for (var attempt = 1; current is not null; attempt++)
                {
                    try
                    {
                        await RunInvocationsAsync(current, exchange, stepWarnings, cancellationToken).ConfigureAwait(false);
                        current = null;
                    }
                    catch (ExoCommandException ex) when (ex.OutcomeUnknown && recheck is not null && attempt < MaxAttemptsPerStep)
                    {
                        // Never sent again blindly: a New-* that did succeed would fail with "already exists".
                        progress?.Write($"{ex.Text}; reading it back ... ");
                        current = await recheck(step, cancellationToken).ConfigureAwait(false);
                        if (current is null)
                            progress?.Write("Exchange Online had made the change ... ");
                    }
                }
            }
            catch (ExoCommandException ex)
            {
                progress?.WriteLine("failed");
                warnings.AddRange(stepWarnings.Select(w => new StepWarning(step, w)));
                return new ExecutionResult { Done = done, Failed = step, Error = ex.Message, NotDone = steps.Skip(i + 1).ToArray(), Warnings = warnings };
            }
            progress?.WriteLine("done");
            foreach (var warning in stepWarnings)
            {
                progress?.WriteLine($"      Exchange Online warns: {warning}");
                warnings.Add(new StepWarning(step, warning));
            }
            done.Add(step);
        }
        return new ExecutionResult { Done = done, NotDone = [], Warnings = warnings };
    }

    private static async Task RunInvocationsAsync(PlanStep step, IExchangeOnline exchange, List<string> warnings, CancellationToken cancellationToken)
    {
        foreach (var invocation in step.Invocations)
        {
            try
            {
                var response = await exchange.InvokeAsync(invocation, cancellationToken).ConfigureAwait(false);
                warnings.AddRange(response.Warnings);
            }
            catch (ExoCommandException ex) when (ex.IsNotFound && invocation.Cmdlet.StartsWith("Remove-", StringComparison.OrdinalIgnoreCase))
            {
                // Already gone: what the step wanted.
            }
        }
    }
}
