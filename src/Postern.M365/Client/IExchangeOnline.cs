using Postern.M365.Exo;

namespace Postern.M365.Client;

/// <summary>Runs Exchange Online cmdlets for one tenant. The REST client implements it; tests may wrap it.</summary>
public interface IExchangeOnline
{
    /// <summary>Runs the cmdlet and returns its output objects (all pages). Throws <see cref="ExoCommandException"/>.</summary>
    Task<IReadOnlyList<ExoObject>> InvokeAsync(CmdletInvocation invocation, CancellationToken cancellationToken);
}

/// <summary>An app-only access token for Exchange Online.</summary>
public interface IExoTokenSource
{
    /// <summary>A valid token (cached until shortly before it expires).</summary>
    Task<string> GetTokenAsync(CancellationToken cancellationToken);
}
