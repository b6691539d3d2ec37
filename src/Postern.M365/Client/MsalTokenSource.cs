using Microsoft.Identity.Client;

namespace Postern.M365.Client;

/// <summary>
/// App-only tokens for Exchange Online through MSAL: client credentials with the app's
/// certificate (a signed client assertion, never a secret), for the scope of the tenant's cloud
/// (https://outlook.office365.com/.default in the commercial one). MSAL keeps the token in memory and asks
/// again shortly before it expires.
/// </summary>
public sealed class MsalTokenSource : IExoTokenSource, IDisposable
{
    private readonly string _scope;
    private readonly IConfidentialClientApplication _application;
    private readonly HttpClient _http;

    public MsalTokenSource(ExoConnection connection)
    {
        _http = new HttpClient(connection.CreateHandler()) { Timeout = TimeSpan.FromMinutes(2) };
        _scope = connection.TokenScope;
        var isMicrosoft = ExoCloud.IsMicrosoftAuthority(connection.Authority);
        var builder = ConfidentialClientApplicationBuilder.Create(connection.AppId)
            .WithCertificate(connection.Certificate)
            .WithHttpClientFactory(new Factory(_http))
            .WithLogging((_, _, _) => { }, LogLevel.Error, enablePiiLogging: false, enableDefaultPlatformLogging: false);
        builder = isMicrosoft
            ? builder.WithAuthority(connection.TenantAuthority.ToString())
            // Another authority (an emulator, a sovereign cloud proxy) is used as given, without Microsoft's instance discovery.
            : builder.WithAuthority(connection.TenantAuthority.ToString(), validateAuthority: false).WithInstanceDiscovery(false);
        _application = builder.Build();
    }

    public async Task<string> GetTokenAsync(CancellationToken cancellationToken)
    {
        try
        {
            var result = await _application.AcquireTokenForClient([_scope]).ExecuteAsync(cancellationToken).ConfigureAwait(false);
            return result.AccessToken;
        }
        catch (MsalServiceException ex)
        {
            throw new ExoCommandException("token", null,
                $"Entra ID refused the app's token request: {ExoCommandException.OneLine(ex.Message)} " +
                "(check the app id, that the certificate is registered on the app, and admin consent for Exchange.ManageAsApp)", status: ex.StatusCode, inner: ex);
        }
        catch (MsalClientException ex)
        {
            throw new ExoCommandException("token", null, $"could not get a token: {ExoCommandException.OneLine(ex.Message)}", inner: ex);
        }
        catch (HttpRequestException ex)
        {
            throw new ExoCommandException("token", null, $"could not reach Entra ID: {ExoCommandException.OneLine(ex.Message)}", inner: ex);
        }
    }

    public void Dispose() => _http.Dispose();

    private sealed class Factory(HttpClient client) : IMsalHttpClientFactory
    {
        public HttpClient GetHttpClient() => client;
    }
}
