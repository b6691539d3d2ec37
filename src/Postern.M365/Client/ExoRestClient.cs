using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Postern.M365.Exo;

namespace Postern.M365.Client;

/// <summary>
/// Exchange Online's admin API the way the ExchangeOnlineManagement v3 module uses it
/// (exo-rest.md): <c>POST {endpoint}/adminapi/beta/{tenant}/InvokeCommand</c> with an app-only
/// bearer token, the cmdlet and its parameters as JSON, all pages followed, throttling waited out
/// with Retry-After, and Exchange's errors turned into one line naming the cmdlet and the item.
/// Logs name cmdlets and items only: never parameter values (the relay key is one) or tokens.
/// </summary>
public sealed class ExoRestClient : IExchangeOnline, IDisposable
{
    /// <summary>The mailbox the module anchors app-only calls to (exo-rest.md, X-AnchorMailbox).</summary>
    private const string SystemMailbox = "SystemMailbox{bb558c35-97f1-4cb9-8ff7-d53741dc928c}";

    private const string ConcurrencyMessage = "You have reached the maximum number of concurrent requests";

    private readonly ExoConnection _connection;
    private readonly IExoTokenSource _tokens;
    private readonly HttpClient _http;
    private readonly ILogger _logger;
    private readonly Func<TimeSpan, CancellationToken, Task> _delay;
    private readonly string _connectionId = Guid.NewGuid().ToString();
    private readonly bool _ownsTokens;

    /// <param name="connection">Where and as whom.</param>
    /// <param name="logger">Cmdlet names, items, statuses and retries.</param>
    /// <param name="tokens">Token source; default MSAL with the connection's certificate.</param>
    /// <param name="delay">How to wait before a retry (tests record the waits instead of sleeping).</param>
    public ExoRestClient(ExoConnection connection, ILogger? logger = null, IExoTokenSource? tokens = null, Func<TimeSpan, CancellationToken, Task>? delay = null)
    {
        _connection = connection;
        _logger = logger ?? NullLogger.Instance;
        _ownsTokens = tokens is null;
        _tokens = tokens ?? new MsalTokenSource(connection);
        _http = new HttpClient(connection.CreateHandler()) { Timeout = connection.RequestTimeout };
        _delay = delay ?? Task.Delay;
    }

    /// <summary>Refuse to send a command the cmdlet reference does not allow (a Postern bug, caught before Exchange sees it).</summary>
    public bool ValidateCommands { get; init; } = true;

    public async Task<ExoResponse> InvokeAsync(CmdletInvocation invocation, CancellationToken cancellationToken)
    {
        if (ValidateCommands && CmdletReference.Default.Validate(invocation) is { Count: > 0 } problems)
            throw new ExoCommandException(invocation.Cmdlet, invocation.Target, "Postern refused to send a command outside the cmdlet reference: " + string.Join("; ", problems));
        var body = Body(invocation);
        var results = new List<ExoObject>();
        var warned = new List<string>();
        var url = new Uri(_connection.Endpoint, $"adminapi/beta/{Uri.EscapeDataString(_connection.TenantSegment)}/InvokeCommand");
        var page = 0;
        while (true)
        {
            page++;
            var json = await SendAsync(invocation, url, body, cancellationToken).ConfigureAwait(false);
            if (json is null)
                break;
            if (json["@adminapi.errors"] is JsonArray { Count: > 0 } errors)
                throw new ExoCommandException(invocation.Cmdlet, invocation.Target, string.Join("; ", errors.Select(e => e?.ToString())));
            if (json["@adminapi.warnings"] is JsonArray { Count: > 0 } warnings)
            {
                foreach (var warning in warnings.Select(w => ExoCommandException.OneLine(w?.ToString() ?? "")).Where(w => w.Length > 0))
                {
                    _logger.LogWarning("{Call}: Exchange Online warns: {Warning}", Label(invocation), warning);
                    warned.Add(warning);
                }
            }
            if (json["value"] is JsonArray values)
                results.AddRange(values.OfType<JsonObject>().Select(v => new ExoObject(v)));
            // Paging: the same body again to the next link, until there is none.
            if (json["@odata.nextLink"]?.GetValue<string>() is not { Length: > 0 } next)
                break;
            url = new Uri(next);
            if (page > 10_000)
                throw new ExoCommandException(invocation.Cmdlet, invocation.Target, "more than 10000 pages: giving up");
        }
        return new ExoResponse(results, warned);
    }

    public void Dispose()
    {
        _http.Dispose();
        if (_ownsTokens && _tokens is IDisposable disposable)
            disposable.Dispose();
    }

    private async Task<JsonObject?> SendAsync(CmdletInvocation invocation, Uri url, string body, CancellationToken cancellationToken)
    {
        for (var attempt = 1; ; attempt++)
        {
            var token = await _tokens.GetTokenAsync(cancellationToken).ConfigureAwait(false);
            using var request = new HttpRequestMessage(HttpMethod.Post, url)
            {
                Content = new StringContent(body, Encoding.UTF8, "application/json"),
            };
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
            request.Headers.Add("X-CmdletName", invocation.Cmdlet);
            request.Headers.Add("X-ClientApplication", "Postern");
            request.Headers.Add("X-ResponseFormat", "json");
            request.Headers.Add("X-AnchorMailbox", $"APP:{SystemMailbox}@{_connection.TenantId}");
            request.Headers.Add("Prefer", $"odata.maxpagesize={Math.Clamp(_connection.PageSize, 1, 1000)}");
            request.Headers.Add("connection-id", _connectionId);
            request.Headers.Add("client-request-id", Guid.NewGuid().ToString());
            request.Headers.AcceptEncoding.Add(new StringWithQualityHeaderValue("gzip"));

            var started = Stopwatch.GetTimestamp();
            HttpResponseMessage response;
            try
            {
                response = await _http.SendAsync(request, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is HttpRequestException || (ex is TaskCanceledException && !cancellationToken.IsCancellationRequested))
            {
                var reading = invocation.Cmdlet.StartsWith("Get-", StringComparison.OrdinalIgnoreCase);
                if (ex.InnerException is System.Security.Authentication.AuthenticationException tls)
                    throw new ExoCommandException(invocation.Cmdlet, invocation.Target,
                        $"no answer from {_connection.Endpoint.Host}: its certificate is not trusted ({ExoCommandException.OneLine(tls.Message)}); for an emulator give --trust-certificate", inner: ex);
                // A lost answer to a change may hide a change that was made: only reads are repeated blindly.
                if (reading && attempt < _connection.MaxAttempts)
                {
                    var wait = Backoff(attempt);
                    _logger.LogWarning("{Call}: {Error}; trying again in {Delay} s", Label(invocation), ex.Message, wait.TotalSeconds);
                    await _delay(wait, cancellationToken).ConfigureAwait(false);
                    continue;
                }
                throw new ExoCommandException(invocation.Cmdlet, invocation.Target,
                    $"no answer from {_connection.Endpoint.Host}: {ExoCommandException.OneLine(ex.Message)}" +
                    (reading ? "" : "; the change may or may not have been made"), inner: ex, outcomeUnknown: !reading);
            }
            using (response)
            {
                var text = await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
                var status = (int)response.StatusCode;
                _logger.LogDebug("{Call}: HTTP {Status} in {Elapsed} ms", Label(invocation), status,
                    (long)Stopwatch.GetElapsedTime(started).TotalMilliseconds);
                var changing = !invocation.Cmdlet.StartsWith("Get-", StringComparison.OrdinalIgnoreCase);
                if (changing && IsServerFailure(response.StatusCode, text))
                {
                    // A gateway timeout or server error after the request went in: Exchange may have made the change.
                    // Sent again blindly, a New-* that did succeed fails with "already exists"; the caller reads the
                    // item back first (after the wait Exchange asked for, as for any busy answer).
                    var wait = RetryAfter(response) ?? Backoff(1);
                    _logger.LogWarning("{Call}: Exchange Online answered HTTP {Status}; reading the item back in {Delay} s before trying again",
                        Label(invocation), status, wait.TotalSeconds);
                    await _delay(wait, cancellationToken).ConfigureAwait(false);
                    throw new ExoCommandException(invocation.Cmdlet, invocation.Target,
                        $"Exchange Online answered HTTP {status}; the change may or may not have been made", status: status, outcomeUnknown: true);
                }
                if (IsThrottled(response.StatusCode, text))
                {
                    if (attempt >= _connection.MaxAttempts)
                        throw new ExoCommandException(invocation.Cmdlet, invocation.Target, $"Exchange Online is still busy (HTTP {status}) after {attempt} attempts; try again later", status: status);
                    var wait = RetryAfter(response) ?? Backoff(attempt);
                    _logger.LogWarning("{Call}: Exchange Online answered HTTP {Status}; trying again in {Delay} s (attempt {Attempt} of {Max})",
                        Label(invocation), status, wait.TotalSeconds, attempt + 1, _connection.MaxAttempts);
                    await _delay(wait, cancellationToken).ConfigureAwait(false);
                    continue;
                }
                if (response.IsSuccessStatusCode)
                {
                    if (response.StatusCode == HttpStatusCode.NoContent || string.IsNullOrWhiteSpace(text))
                        return null;
                    try
                    {
                        return JsonNode.Parse(text) as JsonObject
                            ?? throw new ExoCommandException(invocation.Cmdlet, invocation.Target, "Exchange Online's answer is not a JSON object");
                    }
                    catch (JsonException)
                    {
                        throw new ExoCommandException(invocation.Cmdlet, invocation.Target, "Exchange Online's answer is not JSON: " + Excerpt(text), status: status);
                    }
                }
                throw Failure(invocation, response, text);
            }
        }
    }

    /// <summary>"Set-ArcConfig 'Default'", or the cmdlet alone: what logs name (never values).</summary>
    private static string Label(CmdletInvocation invocation) =>
        invocation.Target is { } target ? $"{invocation.Cmdlet} '{target}'" : invocation.Cmdlet;

    /// <summary>A 5xx that is not Exchange's explicit "too many concurrent requests" (which refuses the request before running it).</summary>
    private static bool IsServerFailure(HttpStatusCode status, string text) =>
        (int)status >= 500 && !text.Contains(ConcurrencyMessage, StringComparison.OrdinalIgnoreCase);

    private static bool IsThrottled(HttpStatusCode status, string text) =>
        status is HttpStatusCode.TooManyRequests or HttpStatusCode.ServiceUnavailable or HttpStatusCode.GatewayTimeout or HttpStatusCode.RequestTimeout
        || text.Contains(ConcurrencyMessage, StringComparison.OrdinalIgnoreCase);

    /// <summary>Retry-After as seconds or as an HTTP date, at most <see cref="ExoConnection.MaxRetryDelay"/>.</summary>
    private TimeSpan? RetryAfter(HttpResponseMessage response)
    {
        var header = response.Headers.RetryAfter;
        TimeSpan? wait = header?.Delta ?? (header?.Date is { } date ? date - DateTimeOffset.UtcNow : null);
        if (wait is null)
            return null;
        return wait < TimeSpan.Zero ? TimeSpan.Zero : wait > _connection.MaxRetryDelay ? _connection.MaxRetryDelay : wait;
    }

    private TimeSpan Backoff(int attempt)
    {
        var wait = TimeSpan.FromSeconds(3 * attempt);
        return wait > _connection.MaxRetryDelay ? _connection.MaxRetryDelay : wait;
    }

    /// <summary>The error as one line: details[].message is "id|exception type|text" (exo-rest.md).</summary>
    private ExoCommandException Failure(CmdletInvocation invocation, HttpResponseMessage response, string text)
    {
        var status = (int)response.StatusCode;
        string? type = response.Headers.TryGetValues("X-ExceptionType", out var types) ? types.FirstOrDefault() : null;
        string? message = null;
        try
        {
            if (JsonNode.Parse(text) is JsonObject json && json["error"] is JsonObject error)
            {
                if (error["details"] is JsonArray details && details.FirstOrDefault()?["message"]?.GetValue<string>() is { } detail)
                {
                    var parts = detail.Split('|', 3);
                    if (parts.Length == 3)
                    {
                        type = parts[1].Length > 0 ? parts[1] : type;
                        message = parts[2];
                    }
                    else
                    {
                        message = detail;
                    }
                }
                message ??= error["innererror"]?["internalexception"]?["message"]?.GetValue<string>()
                    ?? error["innerError"]?["internalException"]?["message"]?.GetValue<string>()
                    ?? error["message"]?.GetValue<string>();
            }
        }
        catch (JsonException)
        {
        }
        message ??= string.IsNullOrWhiteSpace(text) ? response.ReasonPhrase ?? $"HTTP {status}" : Excerpt(text);
        message = status switch
        {
            401 => $"Exchange Online refused the token ({message}); check the app's Exchange.ManageAsApp consent in this tenant",
            403 => $"the app may not do this ({message}); give it the Exchange Administrator role in this tenant",
            _ => message,
        };
        _logger.LogInformation("{Call}: HTTP {Status} {Type}", Label(invocation), status, type);
        return new ExoCommandException(invocation.Cmdlet, invocation.Target, message, type, status);
    }

    private static string Excerpt(string text)
    {
        var line = ExoCommandException.OneLine(text);
        return line.Length > 300 ? line[..300] + "…" : line;
    }

    /// <summary>{"CmdletInput":{"CmdletName":…,"Parameters":{…}}}; a hashtable becomes an Exchange.GenericHashTable object.</summary>
    internal static string Body(CmdletInvocation invocation)
    {
        var parameters = new JsonObject();
        foreach (var (name, value) in invocation.Parameters)
            parameters[name] = ToJson(value);
        var body = new JsonObject
        {
            ["CmdletInput"] = new JsonObject { ["CmdletName"] = invocation.Cmdlet, ["Parameters"] = parameters },
        };
        return body.ToJsonString();
    }

    private static JsonNode? ToJson(object? value) => value switch
    {
        null => null,
        string s => JsonValue.Create(s),
        bool b => JsonValue.Create(b),
        int i => JsonValue.Create(i),
        IReadOnlyList<string> list => new JsonArray([.. list.Select(x => (JsonNode)JsonValue.Create(x))]),
        ExoHashtable h => Hashtable(h),
        _ => JsonValue.Create(Convert.ToString(value, CultureInfo.InvariantCulture)),
    };

    private static JsonObject Hashtable(ExoHashtable table)
    {
        var o = new JsonObject();
        if (table.Add.Count > 0)
            o["Add"] = new JsonArray([.. table.Add.Select(x => (JsonNode)JsonValue.Create(x))]);
        if (table.Remove.Count > 0)
            o["Remove"] = new JsonArray([.. table.Remove.Select(x => (JsonNode)JsonValue.Create(x))]);
        o["@odata.type"] = "#Exchange.GenericHashTable";
        return o;
    }
}
