using System.Net.Security;
using System.Security.Cryptography.X509Certificates;

namespace Postern.M365.Client;

/// <summary>How to reach one tenant's Exchange Online: the app's identity and where the services are.</summary>
public sealed class ExoConnection
{
    public static readonly Uri DefaultEndpoint = ExoCloud.Commercial.Endpoint;

    public static readonly Uri DefaultAuthority = ExoCloud.Commercial.Authority;

    private readonly Uri? _endpoint;
    private readonly Uri? _authority;
    private readonly string? _tokenScope;

    /// <summary>The Entra tenant id.</summary>
    public required Guid TenantId { get; init; }

    /// <summary>The tenant's initial domain (contoso.onmicrosoft.com); when given it names the tenant in the admin API's URL.</summary>
    public string? Organization { get; init; }

    /// <summary>The Entra app (client) id with Exchange.ManageAsApp.</summary>
    public required string AppId { get; init; }

    /// <summary>The app's certificate credential, with its private key.</summary>
    public required X509Certificate2 Certificate { get; init; }

    /// <summary>The cloud the tenant is in; its endpoint, authority and token scope are the defaults below.</summary>
    public ExoCloud Cloud { get; init; } = ExoCloud.Commercial;

    /// <summary>Exchange Online (the cloud's, https://outlook.office365.com for the commercial one), or an emulator.</summary>
    public Uri Endpoint { get => _endpoint ?? Cloud.Endpoint; init => _endpoint = value; }

    /// <summary>The Entra ID host (the cloud's, https://login.microsoftonline.com for the commercial one); the tenant id is appended.</summary>
    public Uri Authority { get => _authority ?? Cloud.Authority; init => _authority = value; }

    /// <summary>What the token is asked for (the cloud's Exchange Online resource + /.default).</summary>
    public string TokenScope { get => _tokenScope ?? Cloud.TokenScope; init => _tokenScope = value; }

    /// <summary>A server certificate to accept besides the system's trusted roots (a test emulator's).</summary>
    public X509Certificate2? TrustedServerCertificate { get; init; }

    /// <summary>Objects per page (Prefer: odata.maxpagesize), 1..1000.</summary>
    public int PageSize { get; init; } = 1000;

    /// <summary>How often a throttled or unavailable call is tried before giving up.</summary>
    public int MaxAttempts { get; init; } = 8;

    /// <summary>The longest wait between attempts Postern accepts, even if Retry-After asks for more.</summary>
    public TimeSpan MaxRetryDelay { get; init; } = TimeSpan.FromMinutes(2);

    /// <summary>Per request; Exchange's own limit for a REST cmdlet is 15 minutes.</summary>
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromMinutes(15);

    /// <summary>The tenant as the admin API's URL names it.</summary>
    public string TenantSegment => string.IsNullOrWhiteSpace(Organization) ? TenantId.ToString() : Organization;

    /// <summary>The authority with the tenant: https://login.microsoftonline.com/{tenant id}.</summary>
    public Uri TenantAuthority => new(Authority, TenantId.ToString());

    /// <summary>An HTTP handler that accepts the system's trusted roots and, when set, <see cref="TrustedServerCertificate"/>.</summary>
    public HttpMessageHandler CreateHandler()
    {
        var handler = new SocketsHttpHandler
        {
            AutomaticDecompression = System.Net.DecompressionMethods.GZip | System.Net.DecompressionMethods.Deflate,
            PooledConnectionLifetime = TimeSpan.FromMinutes(5),
        };
        if (TrustedServerCertificate is { } trusted)
        {
            var raw = trusted.RawData;
            handler.SslOptions.RemoteCertificateValidationCallback = (_, certificate, _, errors) =>
                errors == SslPolicyErrors.None || (certificate is not null && certificate.GetRawCertData().AsSpan().SequenceEqual(raw));
        }
        return handler;
    }
}
