using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json.Nodes;

namespace Postern.ExoEmulator;

/// <summary>One cmdlet call the emulator received (parameters kept for tests; the console shows only names).</summary>
public sealed record EmulatorRequest(DateTimeOffset At, string Tenant, string Cmdlet, string? Target, JsonObject Parameters, int Status);

/// <summary>
/// The emulated Exchange Online service: tenants with their state, the Entra apps allowed to
/// call them, the token issuer, throttling, and a log of every cmdlet call. HTTP lives in
/// <see cref="ExoEmulatorServer"/>; this class is the service behind it, usable directly by tests.
/// </summary>
public sealed class ExoEmulator
{
    /// <summary>The Exchange Online resource of the commercial cloud, what tokens are for unless the tenant is in another cloud.</summary>
    public const string Resource = "https://outlook.office365.com";

    /// <summary>Each cloud's Exchange Online resource, by the names postern m365 connect --cloud takes.</summary>
    public static readonly IReadOnlyDictionary<string, string> CloudResources = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase)
    {
        ["commercial"] = Resource,
        ["gcc-high"] = "https://outlook.office365.us",
        ["dod"] = "https://outlook-dod.office365.us",
        ["china"] = "https://partner.outlook.cn",
    };

    private readonly ConcurrentDictionary<Guid, EmulatedTenant> _tenants = new();
    private readonly ConcurrentQueue<EmulatorRequest> _requests = new();
    private readonly RSA _signingKey = RSA.Create(2048);
    private readonly object _throttleLock = new();
    private readonly Dictionary<string, (string Message, int Count)> _failures = new(StringComparer.OrdinalIgnoreCase);
    private readonly Dictionary<string, (int Status, int Count)> _lostAnswers = new(StringComparer.OrdinalIgnoreCase);
    private readonly List<string> _throttled = [];
    private int _throttleRemaining;
    private int _throttleAfter;
    private string? _throttleCmdlet;
    private int _throttleStatus = 429;
    private TimeSpan _throttleRetryAfter = TimeSpan.FromSeconds(1);

    public CmdletSchema Schema { get; } = new();

    public IReadOnlyCollection<EmulatedTenant> Tenants => _tenants.Values.ToArray();

    /// <summary>The mail side, once <see cref="MailFlow.ExoTransport.StartAsync"/> has started it for this emulator.</summary>
    public MailFlow.ExoTransport? Transport { get; internal set; }

    public IReadOnlyList<EmulatorRequest> Requests => _requests.ToArray();

    /// <summary>Times each InvokeCommand was answered with a throttling status.</summary>
    public int ThrottledResponses { get; private set; }

    public EmulatedTenant AddTenant(Guid tenantId, string organization)
    {
        var tenant = new EmulatedTenant(Schema, tenantId, organization);
        if (!_tenants.TryAdd(tenantId, tenant))
            throw new InvalidOperationException($"tenant {tenantId} exists already");
        return tenant;
    }

    /// <summary>The tenant named by GUID or by its .onmicrosoft.com domain (both appear in the URL path).</summary>
    public EmulatedTenant? FindTenant(string idOrDomain) =>
        Guid.TryParse(idOrDomain, out var id)
            ? _tenants.GetValueOrDefault(id)
            : _tenants.Values.FirstOrDefault(t => t.Organization.Equals(idOrDomain, StringComparison.OrdinalIgnoreCase));

    public EmulatedTenant Tenant(Guid id) => _tenants[id];

    /// <summary>
    /// Answers <paramref name="count"/> InvokeCommand calls with <paramref name="status"/> and Retry-After: the
    /// next ones, or those after <paramref name="after"/> more calls have passed; all cmdlets, or only
    /// <paramref name="cmdlet"/> (a write can be throttled, not just the reads that come first).
    /// </summary>
    public void Throttle(int count, int status = 429, TimeSpan? retryAfter = null, int after = 0, string? cmdlet = null)
    {
        lock (_throttleLock)
        {
            _throttleRemaining = count;
            _throttleAfter = after;
            _throttleCmdlet = string.IsNullOrEmpty(cmdlet) ? null : cmdlet;
            _throttleStatus = status;
            _throttleRetryAfter = retryAfter ?? TimeSpan.FromSeconds(1);
        }
    }

    /// <summary>The cmdlets answered with a throttling status, in order.</summary>
    public IReadOnlyList<string> ThrottledCmdlets
    {
        get
        {
            lock (_throttleLock)
                return [.. _throttled];
        }
    }

    /// <summary>Whether this call of <paramref name="cmdlet"/> is throttled, and how; counts it down.</summary>
    internal (int Status, TimeSpan RetryAfter)? TakeThrottle(string cmdlet)
    {
        lock (_throttleLock)
        {
            if (_throttleRemaining <= 0 || (_throttleCmdlet is not null && !_throttleCmdlet.Equals(cmdlet, StringComparison.OrdinalIgnoreCase)))
                return null;
            if (_throttleAfter > 0)
            {
                _throttleAfter--;
                return null;
            }
            _throttleRemaining--;
            ThrottledResponses++;
            _throttled.Add(cmdlet);
            return (_throttleStatus, _throttleRetryAfter);
        }
    }

    public void ClearRequests() => _requests.Clear();

    /// <summary>Makes the next <paramref name="count"/> calls of <paramref name="cmdlet"/> fail with a validation error (to test partial runs).</summary>
    public void FailNext(string cmdlet, string message, int count = 1)
    {
        lock (_throttleLock)
            _failures[cmdlet] = (message, count);
    }

    /// <summary>
    /// Makes the next <paramref name="count"/> calls of <paramref name="cmdlet"/> do their change and then answer
    /// <paramref name="status"/> (504: the gateway gave up waiting), as when Exchange finished a change whose answer
    /// was lost: a client that sends it again blindly meets its own first attempt ("already exists").
    /// </summary>
    public void LoseAnswerAfterApplying(string cmdlet, int status = 504, int count = 1)
    {
        lock (_throttleLock)
            _lostAnswers[cmdlet] = (status, count);
    }

    private int? TakeLostAnswer(string cmdlet)
    {
        lock (_throttleLock)
        {
            if (!_lostAnswers.TryGetValue(cmdlet, out var lost) || lost.Count <= 0)
                return null;
            _lostAnswers[cmdlet] = (lost.Status, lost.Count - 1);
            return lost.Status;
        }
    }

    private ExoError? TakeFailure(string cmdlet)
    {
        lock (_throttleLock)
        {
            if (!_failures.TryGetValue(cmdlet, out var failure) || failure.Count <= 0)
                return null;
            _failures[cmdlet] = (failure.Message, failure.Count - 1);
            return ExoError.Validation(failure.Message);
        }
    }

    /// <summary>Runs a cmdlet in a tenant as InvokeCommand would, recording it.</summary>
    public CmdletOutput Invoke(EmulatedTenant tenant, string cmdlet, JsonObject? parameters)
    {
        var target = (parameters?["Identity"] ?? parameters?["Name"])?.ToString();
        try
        {
            if (TakeFailure(cmdlet) is { } failure)
                throw failure;
            var result = tenant.Invoke(cmdlet, parameters);
            if (TakeLostAnswer(cmdlet) is { } status)
                throw new ExoError(status, "System.TimeoutException", "The operation has timed out.");
            _requests.Enqueue(new EmulatorRequest(DateTimeOffset.UtcNow, tenant.Organization, cmdlet, target, (JsonObject?)parameters?.DeepClone() ?? [], 200));
            return result;
        }
        catch (ExoError error)
        {
            _requests.Enqueue(new EmulatorRequest(DateTimeOffset.UtcNow, tenant.Organization, cmdlet, target, (JsonObject?)parameters?.DeepClone() ?? [], error.Status));
            throw;
        }
    }

    // ---- tokens -----------------------------------------------------------------------------

    /// <summary>
    /// Checks a client-credentials request the way Entra does for a certificate credential: the
    /// assertion is a JWT signed by the private key of a certificate registered for the app, for
    /// this token endpoint, not expired; returns the access token.
    /// </summary>
    public string IssueToken(string tenantSegment, string clientId, string assertion, string scope, string tokenEndpoint)
    {
        var tenant = FindTenant(tenantSegment) ?? throw new TokenError("invalid_tenant", $"AADSTS90002: Tenant '{tenantSegment}' not found.");
        if (!tenant.Apps.TryGetValue(clientId, out var certificate))
            throw new TokenError("unauthorized_client", $"AADSTS700016: Application with identifier '{clientId}' was not found in the directory '{tenant.Organization}'.");
        if (!scope.Split(' ').Contains(tenant.Resource + "/.default", StringComparer.OrdinalIgnoreCase))
            throw new TokenError("invalid_scope", $"AADSTS70011: The provided value for scope '{scope}' is not valid; use {tenant.Resource}/.default.");
        var jwt = Jwt.Parse(assertion) ?? throw new TokenError("invalid_client", "AADSTS50027: The client assertion is not a valid JWT.");
        using var key = certificate.GetRSAPublicKey() ?? throw new TokenError("invalid_client", "AADSTS700027: The registered certificate has no RSA key.");
        if (!Jwt.Verify(jwt.Header, jwt.SigningInput, jwt.Signature, key))
            throw new TokenError("invalid_client", "AADSTS700027: Client assertion contains an invalid signature.");
        var payload = jwt.Payload;
        if (payload["iss"]?.GetValue<string>() != clientId || payload["sub"]?.GetValue<string>() != clientId)
            throw new TokenError("invalid_client", "AADSTS700021: Client assertion application identifier doesn't match 'client_id' parameter.");
        var audience = payload["aud"]?.GetValue<string>() ?? "";
        if (!audience.TrimEnd('/').Equals(tokenEndpoint.TrimEnd('/'), StringComparison.OrdinalIgnoreCase))
            throw new TokenError("invalid_client", $"AADSTS700016: The client assertion audience '{audience}' is not this token endpoint ({tokenEndpoint}).");
        var now = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        if (Seconds(payload["exp"]) is not { } exp || exp < now)
            throw new TokenError("invalid_client", "AADSTS700024: Client assertion is not within its valid time range.");
        if (Seconds(payload["nbf"]) is { } nbf && nbf > now + 300)
            throw new TokenError("invalid_client", "AADSTS700024: Client assertion is not within its valid time range.");
        var token = new JsonObject
        {
            ["aud"] = tenant.Resource,
            ["iss"] = $"https://sts.windows.net/{tenant.TenantId}/",
            ["iat"] = now,
            ["nbf"] = now,
            ["exp"] = now + 3600,
            ["appid"] = clientId,
            ["tid"] = tenant.TenantId.ToString(),
            ["roles"] = new JsonArray("Exchange.ManageAsApp"),
        };
        return Jwt.Sign(token, _signingKey);
    }

    /// <summary>The tenant an access token grants Exchange.ManageAsApp on; null when the token is not good for <paramref name="tenant"/>.</summary>
    public string? CheckAccessToken(string token, EmulatedTenant tenant)
    {
        var jwt = Jwt.Parse(token);
        if (jwt is null || !Jwt.Verify(jwt.Value.Header, jwt.Value.SigningInput, jwt.Value.Signature, _signingKey))
            return "the access token is not one this service issued";
        var payload = jwt.Value.Payload;
        if (Seconds(payload["exp"]) is not { } exp || exp < DateTimeOffset.UtcNow.ToUnixTimeSeconds())
            return "the access token has expired";
        if (payload["aud"]?.GetValue<string>() != tenant.Resource)
            return "the access token is not for this Exchange Online";
        if (payload["tid"]?.GetValue<string>() != tenant.TenantId.ToString())
            return "the access token is for another tenant";
        if (payload["roles"] is not JsonArray roles || !roles.Any(r => r?.GetValue<string>() == "Exchange.ManageAsApp"))
            return "the app lacks the Exchange.ManageAsApp role";
        return null;
    }

    /// <summary>A NumericDate claim; some clients write it as a string.</summary>
    private static long? Seconds(JsonNode? claim) => claim switch
    {
        JsonValue v when v.GetValueKind() == System.Text.Json.JsonValueKind.Number => v.GetValue<long>(),
        JsonValue v when v.GetValueKind() == System.Text.Json.JsonValueKind.String
            && long.TryParse(v.GetValue<string>(), System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out var n) => n,
        _ => null,
    };

    /// <summary>Registers an app's certificate with a tenant (the Entra app registration plus admin consent).</summary>
    public static void RegisterApp(EmulatedTenant tenant, string appId, X509Certificate2 certificate) =>
        tenant.Apps[appId] = X509CertificateLoader.LoadCertificate(certificate.RawData);
}

/// <summary>An OAuth error response of the token endpoint.</summary>
public sealed class TokenError(string error, string description) : Exception(description)
{
    public string Error { get; } = error;
}
