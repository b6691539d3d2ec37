using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Postern.ExoEmulator;

/// <summary>
/// The emulator over HTTPS, as Exchange Online and Entra ID answer: the OAuth token endpoint
/// (<c>POST /{tenant}/oauth2/v2.0/token</c>) and the admin API (<c>POST /adminapi/beta/{tenant}/InvokeCommand</c>),
/// plus <c>/_emulator/…</c> endpoints to look at and change a tenant directly, and to throttle.
/// Tests start it in-process on port 0; <c>Program</c> starts it from the command line.
/// </summary>
public sealed class ExoEmulatorServer : IAsyncDisposable
{
    private readonly WebApplication _app;

    private ExoEmulatorServer(WebApplication app, ExoEmulator emulator, X509Certificate2 certificate, Uri baseAddress)
    {
        _app = app;
        Emulator = emulator;
        TlsCertificate = certificate;
        BaseAddress = baseAddress;
    }

    public ExoEmulator Emulator { get; }

    /// <summary>The server's TLS certificate (self-signed unless given): clients must trust it to connect.</summary>
    public X509Certificate2 TlsCertificate { get; }

    /// <summary>https://127.0.0.1:PORT/ — the Exchange endpoint and the authority host at once.</summary>
    public Uri BaseAddress { get; }

    /// <summary>Starts listening on <paramref name="url"/> (default https://127.0.0.1:0, a free port).</summary>
    public static async Task<ExoEmulatorServer> StartAsync(ExoEmulator emulator, string url = "https://127.0.0.1:0",
        X509Certificate2? tlsCertificate = null, Action<string>? log = null, CancellationToken cancellationToken = default)
    {
        var uri = new Uri(url);
        var address = uri.Host is "localhost" ? IPAddress.Loopback : IPAddress.Parse(uri.Host);
        var https = uri.Scheme == Uri.UriSchemeHttps;
        var certificate = tlsCertificate ?? CreateTlsCertificate();
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(kestrel => kestrel.Listen(address, uri.Port, listen =>
        {
            if (https)
                listen.UseHttps(certificate);
        }));
        var app = builder.Build();
        log ??= _ => { };
        // An emulator bug should say what it was, not be a bare 500.
        app.Use(async (context, next) =>
        {
            try
            {
                await next(context).ConfigureAwait(false);
            }
            catch (Exception ex) when (!context.Response.HasStarted)
            {
                log($"{context.Request.Path}: {ex}");
                context.Response.StatusCode = 500;
                await context.Response.WriteAsync("emulator error: " + ex.Message).ConfigureAwait(false);
            }
        });
        Map(app, emulator, log);
        await app.StartAsync(cancellationToken).ConfigureAwait(false);
        var bound = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new ExoEmulatorServer(app, emulator, certificate, new Uri(bound.Replace("[::]", "127.0.0.1", StringComparison.Ordinal).TrimEnd('/') + "/"));
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync().ConfigureAwait(false);
        await _app.DisposeAsync().ConfigureAwait(false);
    }

    /// <summary>A self-signed certificate for 127.0.0.1 and localhost.</summary>
    public static X509Certificate2 CreateTlsCertificate()
    {
        using var key = RSA.Create(2048);
        var request = new CertificateRequest("CN=Postern Exchange Online emulator", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        var names = new SubjectAlternativeNameBuilder();
        names.AddIpAddress(IPAddress.Loopback);
        names.AddIpAddress(IPAddress.IPv6Loopback);
        names.AddDnsName("localhost");
        request.CertificateExtensions.Add(names.Build());
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        using var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddYears(1));
        return X509CertificateLoader.LoadPkcs12(certificate.Export(X509ContentType.Pkcs12), null);
    }

    private static void Map(WebApplication app, ExoEmulator emulator, Action<string> log)
    {
        app.MapPost("/{tenant}/oauth2/v2.0/token", async (HttpContext context, string tenant) =>
        {
            var form = await context.Request.ReadFormAsync(context.RequestAborted).ConfigureAwait(false);
            var endpoint = $"{context.Request.Scheme}://{context.Request.Host}{context.Request.Path}";
            try
            {
                if (form["grant_type"] != "client_credentials")
                    throw new TokenError("unsupported_grant_type", "AADSTS70003: only client_credentials is supported here.");
                if (form["client_assertion_type"] != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
                    throw new TokenError("invalid_client", "AADSTS7000218: a certificate client assertion is required.");
                var token = emulator.IssueToken(tenant, form["client_id"].ToString(), form["client_assertion"].ToString(), form["scope"].ToString(), endpoint);
                log($"token issued to app {form["client_id"]} for tenant {tenant}");
                return Results.Json(new JsonObject
                {
                    ["token_type"] = "Bearer",
                    ["expires_in"] = 3599,
                    ["ext_expires_in"] = 3599,
                    ["access_token"] = token,
                });
            }
            catch (TokenError error)
            {
                log($"token refused for tenant {tenant}: {error.Message}");
                return Results.Json(new JsonObject
                {
                    ["error"] = error.Error,
                    ["error_description"] = error.Message,
                    ["error_codes"] = new JsonArray(),
                    ["timestamp"] = DateTimeOffset.UtcNow.ToString("u", CultureInfo.InvariantCulture),
                }, statusCode: error.Error == "invalid_client" ? 401 : 400);
            }
        });

        // Some clients read the authority's metadata first.
        app.MapGet("/{tenant}/v2.0/.well-known/openid-configuration", (HttpContext context, string tenant) =>
        {
            var root = $"{context.Request.Scheme}://{context.Request.Host}/{tenant}";
            return Results.Json(new JsonObject
            {
                ["issuer"] = $"{root}/v2.0",
                ["token_endpoint"] = $"{root}/oauth2/v2.0/token",
                ["authorization_endpoint"] = $"{root}/oauth2/v2.0/authorize",
                ["token_endpoint_auth_methods_supported"] = new JsonArray("private_key_jwt"),
            });
        });

        app.MapPost("/adminapi/beta/{tenant}/InvokeCommand", async (HttpContext context, string tenant) =>
        {
            // The body is read first so that throttling can single out one cmdlet.
            var (cmdlet, parameters) = await ReadCommandAsync(context).ConfigureAwait(false);
            if (emulator.TakeThrottle(cmdlet ?? "") is { } throttle)
            {
                context.Response.Headers.RetryAfter = ((int)Math.Ceiling(throttle.RetryAfter.TotalSeconds)).ToString(CultureInfo.InvariantCulture);
                log($"{tenant}: {cmdlet} throttled ({throttle.Status})");
                return throttle.Status == 429
                    ? Results.Json(new JsonObject { ["error"] = new JsonObject { ["code"] = "TooManyRequests", ["message"] = "You have reached the maximum number of concurrent requests per tenant. Please wait and try again." } }, statusCode: 429)
                    : Results.Text("The service is unavailable.", statusCode: throttle.Status);
            }
            var target = emulator.FindTenant(tenant);
            if (target is null)
                return Unauthorized(context, $"tenant '{tenant}' is not known here");
            var authorization = context.Request.Headers.Authorization.ToString();
            if (!authorization.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
                return Unauthorized(context, "no bearer token");
            if (emulator.CheckAccessToken(authorization[7..].Trim(), target) is { } problem)
                return Unauthorized(context, problem);
            return Invoke(context, emulator, target, tenant, cmdlet, parameters, log);
        });

        app.MapGet("/_emulator/tenants/{tenant}", (string tenant) =>
            emulator.FindTenant(tenant) is { } t ? Results.Json(t.Snapshot()) : Results.NotFound());

        // A change made "directly in the tenant" (the admin centre), without a token.
        app.MapPost("/_emulator/tenants/{tenant}/invoke", async (HttpContext context, string tenant) =>
        {
            var (cmdlet, parameters) = await ReadCommandAsync(context).ConfigureAwait(false);
            return emulator.FindTenant(tenant) is { } t ? Invoke(context, emulator, t, tenant, cmdlet, parameters, log) : Results.NotFound();
        });

        // The mail side (when started): a mailbox user sends, and what the transport did.
        app.MapPost("/_emulator/tenants/{tenant}/send", async (HttpContext context, string tenant) =>
        {
            if (emulator.Transport is not { } transport)
                return Results.Problem("the emulator was started without its mail side (--smtp)", statusCode: 409);
            if (emulator.FindTenant(tenant) is not { } t)
                return Results.NotFound();
            var body = await JsonNode.ParseAsync(context.Request.Body, cancellationToken: context.RequestAborted).ConfigureAwait(false);
            var from = body?["from"]?.GetValue<string>();
            var to = (body?["to"] as JsonArray)?.Select(n => n!.GetValue<string>()).ToArray();
            var message = body?["message"]?.GetValue<string>();
            if (string.IsNullOrEmpty(from) || to is not { Length: > 0 } || string.IsNullOrEmpty(message))
                return Results.Problem("from, to (a list) and message (the whole message, CRLF line ends) are required", statusCode: 400);
            try
            {
                var id = transport.Submit(t, from, to, System.Text.Encoding.UTF8.GetBytes(message.ReplaceLineEndings("\r\n")));
                return Results.Json(new JsonObject { ["id"] = id });
            }
            catch (ArgumentException ex)
            {
                return Results.Problem(ex.Message, statusCode: 400);
            }
        });

        app.MapGet("/_emulator/mail", () => emulator.Transport is not { } transport
            ? Results.Problem("the emulator was started without its mail side (--smtp)", statusCode: 409)
            : Results.Json(new JsonObject
            {
                ["events"] = new JsonArray([.. transport.Log.Events.Select(e => (JsonNode)new JsonObject
                {
                    ["at"] = e.At.ToString("O", CultureInfo.InvariantCulture),
                    ["id"] = e.MessageId,
                    ["tenant"] = e.Tenant,
                    ["what"] = e.What,
                    ["detail"] = e.Detail,
                })]),
                ["connections"] = new JsonArray([.. transport.Log.Connections.Select(c => (JsonNode)new JsonObject
                {
                    ["at"] = c.At.ToString("O", CultureInfo.InvariantCulture),
                    ["client"] = c.Client.ToString(),
                    ["tls"] = c.Tls,
                    ["certificate"] = c.CertificateSubject,
                    ["names"] = new JsonArray([.. c.CertificateNames.Select(n => (JsonNode)JsonValue.Create(n))]),
                })]),
                ["arcKey"] = new JsonObject { ["name"] = transport.Arc.DnsName, ["txt"] = transport.Arc.DnsRecord },
            }));

        app.MapPost("/_emulator/throttle", async (HttpContext context) =>
        {
            var body = await JsonNode.ParseAsync(context.Request.Body, cancellationToken: context.RequestAborted).ConfigureAwait(false);
            var count = body?["count"]?.GetValue<int>() ?? 1;
            var status = body?["status"]?.GetValue<int>() ?? 429;
            var seconds = body?["retryAfterSeconds"]?.GetValue<double>() ?? 1;
            var after = body?["after"]?.GetValue<int>() ?? 0;
            var cmdlet = body?["cmdlet"]?.GetValue<string>();
            emulator.Throttle(count, status, TimeSpan.FromSeconds(seconds), after, cmdlet);
            log($"throttling {count} call(s) of {cmdlet ?? "any cmdlet"} after {after} more with {status}, Retry-After {seconds}s");
            return Results.NoContent();
        });

        app.MapPost("/_emulator/fail", async (HttpContext context) =>
        {
            var body = await JsonNode.ParseAsync(context.Request.Body, cancellationToken: context.RequestAborted).ConfigureAwait(false);
            var cmdlet = body?["cmdlet"]?.GetValue<string>();
            if (string.IsNullOrEmpty(cmdlet))
                return Results.BadRequest("cmdlet is required");
            var count = body?["count"]?.GetValue<int>() ?? 1;
            if (body?["afterApplying"]?.GetValue<bool>() == true)
            {
                var status = body?["status"]?.GetValue<int>() ?? 504;
                emulator.LoseAnswerAfterApplying(cmdlet, status, count);
                log($"answering the next call(s) of {cmdlet} with {status} after making the change");
                return Results.NoContent();
            }
            emulator.FailNext(cmdlet, body?["message"]?.GetValue<string>() ?? "Injected failure.", count);
            log($"failing the next call(s) of {cmdlet}");
            return Results.NoContent();
        });

        app.MapGet("/_emulator/requests", () => Results.Json(new JsonArray([.. emulator.Requests.Select(r => (JsonNode)new JsonObject
        {
            ["at"] = r.At.ToString("O", CultureInfo.InvariantCulture),
            ["tenant"] = r.Tenant,
            ["cmdlet"] = r.Cmdlet,
            ["target"] = r.Target,
            ["status"] = r.Status,
        })])));
    }

    /// <summary>The cmdlet name and parameters of an InvokeCommand body; a null name when the body is not one.</summary>
    private static async Task<(string? Cmdlet, JsonObject? Parameters)> ReadCommandAsync(HttpContext context)
    {
        try
        {
            var body = await JsonNode.ParseAsync(context.Request.Body, cancellationToken: context.RequestAborted).ConfigureAwait(false);
            var input = body?["CmdletInput"] as JsonObject;
            return (input?["CmdletName"]?.GetValue<string>(), input?["Parameters"] as JsonObject);
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException)
        {
            return (null, null);
        }
    }

    private static IResult Invoke(HttpContext context, ExoEmulator emulator, EmulatedTenant tenant, string tenantSegment, string? cmdlet, JsonObject? parameters, Action<string> log)
    {
        if (string.IsNullOrEmpty(cmdlet))
            return Error(context, ExoError.Binding("The request body must be {\"CmdletInput\":{\"CmdletName\":…,\"Parameters\":{…}}}."));
        CmdletOutput output;
        try
        {
            output = emulator.Invoke(tenant, cmdlet, parameters);
            log($"{tenant.Organization}: {cmdlet} {parameters?["Identity"] ?? parameters?["Name"]} -> 200");
        }
        catch (ExoError error)
        {
            log($"{tenant.Organization}: {cmdlet} {parameters?["Identity"] ?? parameters?["Name"]} -> {error.Status} {error.Message}");
            return Error(context, error);
        }

        var pageSize = 1000;
        var prefer = context.Request.Headers["Prefer"].ToString();
        var marker = prefer.IndexOf("odata.maxpagesize=", StringComparison.OrdinalIgnoreCase);
        if (marker >= 0 && int.TryParse(new string(prefer[(marker + 18)..].TakeWhile(char.IsDigit).ToArray()), CultureInfo.InvariantCulture, out var preferred) && preferred > 0)
            pageSize = Math.Min(preferred, 1000);
        var skip = int.TryParse(context.Request.Query["$skiptoken"], CultureInfo.InvariantCulture, out var s) ? s : 0;
        var page = output.Skip(skip).Take(pageSize).ToArray();
        var root = $"{context.Request.Scheme}://{context.Request.Host}/adminapi/beta/{tenantSegment}";
        var response = new JsonObject
        {
            ["@odata.context"] = $"{root}/$metadata#Collection(Exchange.GenericHashTable)",
            ["adminapi.warnings@odata.type"] = "#Collection(String)",
            ["@adminapi.warnings"] = new JsonArray([.. output.Warnings.Select(w => (JsonNode)JsonValue.Create(w))]),
            ["value"] = new JsonArray([.. page.Select(o => (JsonNode)o)]),
        };
        if (skip + page.Length < output.Count)
            response["@odata.nextLink"] = $"{root}/InvokeCommand?$skiptoken={skip + page.Length}";
        return Results.Json(response);
    }

    private static IResult Error(HttpContext context, ExoError error)
    {
        context.Response.Headers["X-ExceptionType"] = error.ExceptionType.Split('.').Last();
        return Results.Json(error.ToJson(), statusCode: error.Status);
    }

    private static IResult Unauthorized(HttpContext context, string problem)
    {
        context.Response.Headers.WWWAuthenticate = $"Bearer error=\"invalid_token\", error_description=\"{problem}\"";
        return Results.Json(new JsonObject { ["error"] = new JsonObject { ["code"] = "Unauthorized", ["message"] = problem } }, statusCode: 401);
    }
}
