using Postern.M365.Exo;

namespace Postern.M365.Client;

/// <summary>Runs Exchange Online cmdlets for one tenant. The REST client implements it; tests may wrap it.</summary>
public interface IExchangeOnline
{
    /// <summary>Runs the cmdlet and returns its output objects (all pages) and Exchange's warnings. Throws <see cref="ExoCommandException"/>.</summary>
    Task<ExoResponse> InvokeAsync(CmdletInvocation invocation, CancellationToken cancellationToken);
}

/// <summary>
/// A cmdlet's answer: its output objects, and the warnings Exchange Online sent with them (<c>@adminapi.warnings</c>).
/// A warning is not an error: the cmdlet ran, but it may not have done what was asked (an OnPremises inbound
/// connector created disabled, for one).
/// </summary>
public sealed class ExoResponse(IReadOnlyList<ExoObject> objects, IReadOnlyList<string> warnings) : IReadOnlyList<ExoObject>
{
    public static readonly ExoResponse Empty = new([], []);

    public IReadOnlyList<string> Warnings { get; } = warnings;

    public ExoObject this[int index] => objects[index];

    public int Count => objects.Count;

    public IEnumerator<ExoObject> GetEnumerator() => objects.GetEnumerator();

    System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
}

/// <summary>An app-only access token for Exchange Online.</summary>
public interface IExoTokenSource
{
    /// <summary>A valid token (cached until shortly before it expires).</summary>
    Task<string> GetTokenAsync(CancellationToken cancellationToken);
}
