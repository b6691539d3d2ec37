using Postern.M365.Blueprints;
using Postern.M365.Exo;

namespace Postern.M365.Reconcile;

/// <summary>What one step of a plan does to its item.</summary>
public enum StepAction
{
    /// <summary>The item is as it should be.</summary>
    Nothing,

    /// <summary>A check that changes nothing (accepted domains).</summary>
    Check,

    Create,

    /// <summary>Some parameters differ; <see cref="PlanStep.Changes"/> says which.</summary>
    Update,

    /// <summary>Removed and created again (an inbound connector's type cannot change in place).</summary>
    Recreate,

    /// <summary>A rule moved back above a later Postern rule.</summary>
    Move,

    Enable,

    Disable,

    /// <summary>Postern's item that the chosen profile does not have (left by another profile), or removal.</summary>
    Delete,
}

/// <summary>One item's step: what happens, which parameters change, and the cmdlet calls that do it.</summary>
public sealed class PlanStep
{
    public required string Kind { get; init; }

    public required string Name { get; init; }

    public required StepAction Action { get; init; }

    /// <summary>What the step does, in words ("create, disabled, below the 5 existing rules").</summary>
    public required string Summary { get; init; }

    public IReadOnlyList<Difference> Changes { get; init; } = [];

    /// <summary>The calls that carry the step out, in order.</summary>
    public IReadOnlyList<CmdletInvocation> Invocations { get; init; } = [];

    /// <summary>The step sets the relay key in a rule, so it can only run when the key was given.</summary>
    public bool NeedsRelayKey { get; init; }

    /// <summary>Things to know about this item (a non-Authoritative accepted domain, …).</summary>
    public IReadOnlyList<string> Notes { get; init; } = [];

    public string Title => $"{Kind} '{Name}'";

    public bool ChangesSomething => Action is not (StepAction.Nothing or StepAction.Check);

    public override string ToString() => $"{Title}: {Summary}";
}

/// <summary>The steps that take a tenant from what it has to its blueprint, in the order they must run.</summary>
public sealed class Plan
{
    public required Blueprint Blueprint { get; init; }

    public required IReadOnlyList<PlanStep> Steps { get; init; }

    /// <summary>The blueprint's warnings and what the tenant's state adds.</summary>
    public required IReadOnlyList<string> Warnings { get; init; }

    public IReadOnlyList<string> Advice => Blueprint.Advice;

    public IEnumerable<PlanStep> Changes => Steps.Where(s => s.ChangesSomething);

    public bool NeedsRelayKey => Steps.Any(s => s.NeedsRelayKey);

    public bool IsEmpty => !Changes.Any();
}
