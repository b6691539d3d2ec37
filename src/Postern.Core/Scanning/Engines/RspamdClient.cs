using System.Globalization;
using System.Net.Http.Headers;
using System.Text.Json;
using Postern.Core.Configuration;

namespace Postern.Core.Scanning.Engines;

/// <summary>What rspamd is told about a message besides its content (all optional; each makes its checks better).</summary>
/// <param name="Ip">The connecting client's address (the IP header).</param>
/// <param name="Helo">The client's HELO/EHLO name.</param>
/// <param name="From">The envelope sender (MAIL FROM); null or empty for bounces.</param>
/// <param name="Recipients">The envelope recipients (RCPT TO).</param>
/// <param name="QueueId">Postern's queue id, so rspamd's log lines can be matched to the trace.</param>
public sealed record RspamdRequest(string? Ip = null, string? Helo = null, string? From = null,
    IReadOnlyList<string>? Recipients = null, string? QueueId = null);

/// <summary>One rspamd rule that matched.</summary>
public sealed record RspamdSymbol(string Name, double Score, IReadOnlyList<string> Options);

/// <summary>rspamd's result for one message (the /checkv2 reply).</summary>
/// <param name="Action">"no action", "greylist", "add header", "rewrite subject", "soft reject" or "reject".</param>
/// <param name="Score">The message's score.</param>
/// <param name="RequiredScore">The reject threshold in force.</param>
/// <param name="Symbols">Rules that matched, highest score first.</param>
/// <param name="IsSkipped">True when a pre-filter decided (GTUBE, settings) and the other rules did not run.</param>
/// <param name="SmtpMessage">The reply text rspamd suggests for rejecting, if any.</param>
public sealed record RspamdResult(string Action, double Score, double RequiredScore, IReadOnlyList<RspamdSymbol> Symbols,
    bool IsSkipped = false, string? SmtpMessage = null)
{
    /// <summary>Parses a /checkv2 JSON reply; throws <see cref="RspamdException"/> when it is not one.</summary>
    public static RspamdResult Parse(string json)
    {
        try
        {
            using var document = JsonDocument.Parse(json);
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                throw new RspamdException("rspamd's reply is not a JSON object");
            if (root.TryGetProperty("error", out var error))
                throw new RspamdException($"rspamd answered with an error: {error}");
            if (!root.TryGetProperty("action", out var action) || action.ValueKind != JsonValueKind.String)
                throw new RspamdException("rspamd's reply has no action");
            var symbols = new List<RspamdSymbol>();
            if (root.TryGetProperty("symbols", out var symbolMap) && symbolMap.ValueKind == JsonValueKind.Object)
            {
                foreach (var symbol in symbolMap.EnumerateObject())
                {
                    var options = symbol.Value.TryGetProperty("options", out var o) && o.ValueKind == JsonValueKind.Array
                        ? o.EnumerateArray().Select(x => x.ToString()).ToList()
                        : [];
                    symbols.Add(new RspamdSymbol(symbol.Name, Number(symbol.Value, "score"), options));
                }
            }
            var smtpMessage = root.TryGetProperty("messages", out var messages) && messages.ValueKind == JsonValueKind.Object &&
                messages.TryGetProperty("smtp_message", out var m) && m.ValueKind == JsonValueKind.String ? m.GetString() : null;
            return new RspamdResult(
                action.GetString()!,
                Number(root, "score"),
                Number(root, "required_score"),
                symbols.OrderByDescending(s => s.Score).ThenBy(s => s.Name, StringComparer.Ordinal).ToList(),
                root.TryGetProperty("is_skipped", out var skipped) && skipped.ValueKind == JsonValueKind.True,
                smtpMessage);
        }
        catch (JsonException e)
        {
            throw new RspamdException($"rspamd's reply is not valid JSON ({e.Message})", e);
        }
    }

    private static double Number(JsonElement element, string name) =>
        element.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.Number ? value.GetDouble() : 0;
}

/// <summary>rspamd could not be asked: not reachable, timed out, an HTTP error, or a reply that is not a result.</summary>
public sealed class RspamdException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// A client for rspamd's HTTP protocol on the normal worker: <c>POST /checkv2</c> with the raw message
/// as the body and the envelope in rspamd's request headers (IP, Helo, From, Rcpt, Queue-Id).
/// </summary>
/// <remarks>
/// HttpClient writes a header given several values as one line with comma-separated values, so the
/// recipients go as <c>Rcpt: a@x, b@y</c>; rspamd splits that list into one envelope recipient each
/// (checked with rspamd 3.4: TO_MATCH_ENVRCPT_ALL holds for a message to both).
/// </remarks>
public sealed class RspamdClient : IDisposable
{
    private readonly RspamdOptions options;
    private readonly HttpClient http;
    private readonly Uri baseUrl;

    public RspamdClient(RspamdOptions options, HttpMessageHandler? handler = null)
    {
        this.options = options;
        if (!Uri.TryCreate(options.Url, UriKind.Absolute, out var url) || url.Scheme is not ("http" or "https"))
            throw new ArgumentException($"Postern:Scanning:Rspamd:Url '{options.Url}' is not an absolute http(s) URL", nameof(options));
        baseUrl = new Uri(url.AbsoluteUri.TrimEnd('/') + "/");
        http = new HttpClient(handler ?? new SocketsHttpHandler
        {
            ConnectTimeout = options.ConnectTimeout,
            PooledConnectionIdleTimeout = TimeSpan.FromSeconds(30),
            UseProxy = false,
            AllowAutoRedirect = false,
            RequestHeaderEncodingSelector = (_, _) => System.Text.Encoding.UTF8, // SMTPUTF8 addresses in From/Rcpt
        })
        {
            Timeout = Timeout.InfiniteTimeSpan, // each call has its own deadline
        };
    }

    public Uri Url => baseUrl;

    /// <summary>GET /ping: "pong" when the worker is up; throws <see cref="RspamdException"/> otherwise.</summary>
    public async Task<string> PingAsync(CancellationToken cancellationToken = default)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(options.ConnectTimeout + options.ConnectTimeout);
        try
        {
            using var response = await http.GetAsync(new Uri(baseUrl, "ping"), deadline.Token);
            var body = await response.Content.ReadAsStringAsync(deadline.Token);
            return response.IsSuccessStatusCode ? body.Trim() : throw new RspamdException($"rspamd at {baseUrl} answered /ping with HTTP {(int)response.StatusCode}");
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new RspamdException($"rspamd at {baseUrl} did not answer /ping in time");
        }
        catch (HttpRequestException e)
        {
            throw new RspamdException($"rspamd at {baseUrl} is not reachable: {e.Message}", e);
        }
    }

    /// <summary>
    /// Checks a message (read from <paramref name="message"/>'s position to its end). Throws
    /// <see cref="RspamdException"/> when no result could be had, and <see cref="OperationCanceledException"/>
    /// only for <paramref name="cancellationToken"/>.
    /// </summary>
    public async Task<RspamdResult> CheckAsync(Stream message, RspamdRequest request, CancellationToken cancellationToken = default)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(options.Timeout);
        using var content = new StreamContent(message);
        content.Headers.ContentType = new MediaTypeHeaderValue("message/rfc822");
        if (message.CanSeek)
            content.Headers.ContentLength = message.Length - message.Position;
        using var httpRequest = new HttpRequestMessage(HttpMethod.Post, new Uri(baseUrl, "checkv2")) { Content = content };
        AddHeader(httpRequest, "IP", request.Ip);
        AddHeader(httpRequest, "Helo", request.Helo);
        AddHeader(httpRequest, "From", request.From);
        AddHeader(httpRequest, "Queue-Id", request.QueueId);
        AddHeader(httpRequest, "Settings-Id", options.SettingsId);
        foreach (var recipient in request.Recipients ?? [])
            AddHeader(httpRequest, "Rcpt", recipient);
        try
        {
            using var response = await http.SendAsync(httpRequest, HttpCompletionOption.ResponseContentRead, deadline.Token);
            var body = await response.Content.ReadAsStringAsync(deadline.Token);
            if (!response.IsSuccessStatusCode)
                throw new RspamdException($"rspamd at {baseUrl} answered HTTP {(int)response.StatusCode}: {Shorten(body)}");
            return RspamdResult.Parse(body);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new RspamdException($"rspamd at {baseUrl} did not answer within {options.Timeout.TotalSeconds:0.#} s");
        }
        catch (HttpRequestException e)
        {
            throw new RspamdException($"rspamd at {baseUrl} is not reachable: {e.Message}", e);
        }
    }

    private static void AddHeader(HttpRequestMessage request, string name, string? value)
    {
        // Header values are one line of printable ASCII or UTF-8; anything with a line break is dropped, never folded into the request.
        if (string.IsNullOrWhiteSpace(value) || value.Any(c => c is '\r' or '\n' or '\0'))
            return;
        request.Headers.TryAddWithoutValidation(name, value.Trim());
    }

    private static string Shorten(string text)
    {
        var line = text.ReplaceLineEndings(" ").Trim();
        return line.Length <= 200 ? line : line[..197] + "...";
    }

    public void Dispose() => http.Dispose();

    internal static string Format(double value) => value.ToString("0.##", CultureInfo.InvariantCulture);
}
