using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Postern.Core.Authentication;

/// <summary>
/// SPF's check_host() (RFC 7208 §4): may this client IP send mail for that domain? Every mechanism,
/// modifier and macro is supported, with the DNS processing limits of §4.6.4 (10 DNS-querying terms,
/// 2 void lookups, 10 MX and 10 PTR names). One instance can check many messages at once.
/// </summary>
public sealed class SpfChecker
{
    private const int MaxMxNames = 10;
    private const int MaxPtrNames = 10;

    private readonly IDnsResolver _dns;
    private readonly SpfOptions _options;

    public SpfChecker(IDnsResolver dns, SpfOptions? options = null)
    {
        _dns = dns;
        _options = options ?? new SpfOptions();
    }

    /// <summary>
    /// Checks the MAIL FROM identity (§2.4). A null reverse-path ("MAIL FROM:&lt;&gt;") is checked as
    /// postmaster@HELO, as the RFC requires.
    /// </summary>
    public Task<SpfCheckResult> CheckMailFromAsync(IPAddress client, string? mailFrom, string? helo, CancellationToken cancellationToken = default)
    {
        if (string.IsNullOrEmpty(mailFrom))
            return CheckHeloAsync(client, helo ?? "", cancellationToken);
        var at = mailFrom.LastIndexOf('@');
        var domain = at < 0 ? mailFrom : mailFrom[(at + 1)..];
        return CheckAsync(client, domain, mailFrom, helo, SpfIdentity.MailFrom, cancellationToken);
    }

    /// <summary>Checks the HELO identity (§2.3): the HELO name as domain, postmaster@HELO as sender.</summary>
    public Task<SpfCheckResult> CheckHeloAsync(IPAddress client, string helo, CancellationToken cancellationToken = default) =>
        CheckAsync(client, helo, "postmaster@" + helo, helo, SpfIdentity.Helo, cancellationToken);

    /// <summary>check_host(ip, domain, sender) exactly as §4 defines it, with <paramref name="helo"/> for the %{h} macro.</summary>
    public Task<SpfCheckResult> CheckHostAsync(IPAddress client, string domain, string sender, string? helo, CancellationToken cancellationToken = default) =>
        CheckAsync(client, domain, sender, helo, SpfIdentity.MailFrom, cancellationToken);

    private async Task<SpfCheckResult> CheckAsync(
        IPAddress client, string domain, string sender, string? helo, SpfIdentity identity, CancellationToken cancellationToken)
    {
        domain = domain.TrimEnd('.');
        if (!IsCheckableDomain(domain))
            return new SpfCheckResult(SpfResult.None, identity, domain, sender, Problem: $"'{domain}' is not a fully qualified domain name");

        var evaluation = new Evaluation(this, client, sender, domain, helo, cancellationToken);
        try
        {
            var outcome = await evaluation.CheckHostAsync(domain, topLevel: true).ConfigureAwait(false);
            return new SpfCheckResult(outcome.Result, identity, domain, sender, outcome.Explanation, outcome.Mechanism, outcome.Problem);
        }
        catch (SpfPermErrorException ex)
        {
            return new SpfCheckResult(SpfResult.PermError, identity, domain, sender, Problem: ex.Message);
        }
        catch (SpfTempErrorException ex)
        {
            return new SpfCheckResult(SpfResult.TempError, identity, domain, sender, Problem: ex.Message);
        }
    }

    /// <summary>The §4.3 initial checks: a multi-label name, no empty label, no label over 63 octets, not a literal.</summary>
    private static bool IsCheckableDomain(string domain)
    {
        if (domain.Length is 0 or > 253 || domain.StartsWith('['))
            return false;
        var labels = domain.Split('.');
        return labels.Length >= 2 && labels.All(l => l.Length is > 0 and <= 63);
    }

    /// <summary>A name DNS can be asked about: no empty label, none over 63 octets.</summary>
    private static bool IsQueryableName(string name) =>
        name.Length is > 0 and <= 253 && name.Split('.').All(l => l.Length is > 0 and <= 63);

    private static bool InNetwork(IPAddress candidate, IPAddress network, int prefix)
    {
        if (candidate.AddressFamily != network.AddressFamily)
            return false;
        var a = candidate.GetAddressBytes();
        var b = network.GetAddressBytes();
        var fullBytes = prefix / 8;
        for (var i = 0; i < fullBytes; i++)
        {
            if (a[i] != b[i])
                return false;
        }
        var remainingBits = prefix % 8;
        if (remainingBits == 0)
            return true;
        var mask = (byte)(0xFF << (8 - remainingBits));
        return (a[fullBytes] & mask) == (b[fullBytes] & mask);
    }

    private sealed record Outcome(SpfResult Result, string? Mechanism, string? Explanation = null, string? Problem = null);

    /// <summary>The state of one check_host() call, shared by its include and redirect recursion: the lookup counters live here.</summary>
    private sealed class Evaluation
    {
        private readonly SpfChecker _checker;
        private readonly IPAddress _client;
        private readonly string _sender;
        private readonly string _localPart;
        private readonly string _senderDomain;
        private readonly string _helo;
        private readonly CancellationToken _cancellationToken;
        private int _dnsLookups;
        private int _voidLookups;
        private string? _validatedName;

        public Evaluation(SpfChecker checker, IPAddress client, string sender, string domain, string? helo, CancellationToken cancellationToken)
        {
            _checker = checker;
            _client = client.IsIPv4MappedToIPv6 ? client.MapToIPv4() : client;
            var at = sender.LastIndexOf('@');
            _localPart = at <= 0 ? "postmaster" : sender[..at];
            _senderDomain = at < 0 ? domain : sender[(at + 1)..];
            _sender = _localPart + "@" + _senderDomain;
            _helo = string.IsNullOrEmpty(helo) ? "unknown" : helo;
            _cancellationToken = cancellationToken;
        }

        private AddressFamily Family => _client.AddressFamily;

        private SpfOptions Options => _checker._options;

        public async Task<Outcome> CheckHostAsync(string domain, bool topLevel)
        {
            var text = await FindRecordAsync(domain).ConfigureAwait(false);
            if (text is null)
                return new Outcome(SpfResult.None, null, Problem: $"no SPF record at '{domain}'");
            var record = SpfRecord.Parse(text);

            foreach (var directive in record.Directives)
            {
                if (!await MatchesAsync(directive, domain).ConfigureAwait(false))
                    continue;
                var result = directive.Qualifier switch
                {
                    SpfQualifier.Pass => SpfResult.Pass,
                    SpfQualifier.Fail => SpfResult.Fail,
                    SpfQualifier.SoftFail => SpfResult.SoftFail,
                    _ => SpfResult.Neutral,
                };
                var explanation = result == SpfResult.Fail && topLevel ? await ExplainAsync(record, domain).ConfigureAwait(false) : null;
                return new Outcome(result, directive.Text, explanation);
            }

            if (record.Redirect is not null)
            {
                CountDnsLookup("redirect=" + record.Redirect.Text);
                var target = await ExpandDomainAsync(record.Redirect, domain).ConfigureAwait(false);
                if (target is null || await FindRecordAsync(target).ConfigureAwait(false) is null)
                    throw new SpfPermErrorException($"redirect={record.Redirect.Text}: '{target}' has no SPF record");
                // The target's own exp= applies, not this record's (§6.2).
                return await CheckHostAsync(target, topLevel).ConfigureAwait(false);
            }

            return new Outcome(SpfResult.Neutral, "default");
        }

        /// <summary>The one SPF record at <paramref name="domain"/>, null when there is none; two or more is a permerror (§4.5).</summary>
        private async Task<string?> FindRecordAsync(string domain)
        {
            if (!IsQueryableName(domain))
                return null;
            var answer = await _checker._dns.QueryTxtAsync(domain, _cancellationToken).ConfigureAwait(false);
            CheckAnswer(answer, "TXT", domain);
            var records = answer.Records.Where(SpfRecord.IsSpfRecord).ToArray();
            return records.Length switch
            {
                0 => null,
                1 => records[0],
                _ => throw new SpfPermErrorException($"'{domain}' publishes {records.Length} SPF records"),
            };
        }

        private async Task<bool> MatchesAsync(SpfDirective directive, string domain)
        {
            if (directive.CountsAsDnsLookup)
                CountDnsLookup(directive.Text);
            switch (directive.Kind)
            {
                case SpfMechanismKind.All:
                    return true;

                case SpfMechanismKind.Ip4:
                    return Family == AddressFamily.InterNetwork && InNetwork(_client, directive.Network!, directive.Ip4Prefix);

                case SpfMechanismKind.Ip6:
                    return Family == AddressFamily.InterNetworkV6 && InNetwork(_client, directive.Network!, directive.Ip6Prefix);

                case SpfMechanismKind.Include:
                    {
                        var target = await ExpandDomainAsync(directive.DomainSpec!, domain).ConfigureAwait(false);
                        var included = target is null
                            ? new Outcome(SpfResult.None, null)
                            : await CheckHostAsync(target, topLevel: false).ConfigureAwait(false);
                        return included.Result switch
                        {
                            SpfResult.Pass => true,
                            SpfResult.Fail or SpfResult.SoftFail or SpfResult.Neutral => false,
                            SpfResult.TempError => throw new SpfTempErrorException(included.Problem ?? $"'{directive.Text}': temporary error"),
                            SpfResult.None => throw new SpfPermErrorException($"'{directive.Text}': '{target}' has no SPF record"),
                            _ => throw new SpfPermErrorException(included.Problem ?? $"'{directive.Text}': permanent error"),
                        };
                    }

                case SpfMechanismKind.A:
                    {
                        var target = directive.DomainSpec is null ? domain : await ExpandDomainAsync(directive.DomainSpec, domain).ConfigureAwait(false);
                        var addresses = await AddressesAsync(target, Family).ConfigureAwait(false);
                        return addresses.Any(a => InNetwork(_client, a, Prefix(directive)));
                    }

                case SpfMechanismKind.Mx:
                    {
                        var target = directive.DomainSpec is null ? domain : await ExpandDomainAsync(directive.DomainSpec, domain).ConfigureAwait(false);
                        if (target is null)
                            return false;
                        var mx = await _checker._dns.QueryMxAsync(target, _cancellationToken).ConfigureAwait(false);
                        CheckAnswer(mx, "MX", target);
                        if (mx.Records.Count > MaxMxNames)
                            throw new SpfPermErrorException($"'{directive.Text}': '{target}' has {mx.Records.Count} MX records (at most {MaxMxNames})");
                        foreach (var host in mx.Records.OrderBy(r => r.Preference))
                        {
                            var addresses = await AddressesAsync(host.Exchange, Family).ConfigureAwait(false);
                            if (addresses.Any(a => InNetwork(_client, a, Prefix(directive))))
                                return true;
                        }
                        return false;
                    }

                case SpfMechanismKind.Ptr:
                    {
                        var target = directive.DomainSpec is null ? domain : await ExpandDomainAsync(directive.DomainSpec, domain).ConfigureAwait(false);
                        if (target is null)
                            return false;
                        var names = await ValidatedNamesAsync().ConfigureAwait(false);
                        return names.Any(n => IsSameOrSubdomain(n, target));
                    }

                case SpfMechanismKind.Exists:
                    {
                        var target = await ExpandDomainAsync(directive.DomainSpec!, domain).ConfigureAwait(false);
                        // exists always asks for A records, whatever the client's address family (§5.7).
                        var addresses = await AddressesAsync(target, AddressFamily.InterNetwork).ConfigureAwait(false);
                        return addresses.Count > 0;
                    }

                default:
                    throw new SpfPermErrorException($"unknown mechanism '{directive.Text}'");
            }
        }

        private int Prefix(SpfDirective directive) => Family == AddressFamily.InterNetworkV6 ? directive.Ip6Prefix : directive.Ip4Prefix;

        private async Task<IReadOnlyList<IPAddress>> AddressesAsync(string? name, AddressFamily family)
        {
            if (name is null || !IsQueryableName(name))
                return [];
            var answer = await _checker._dns.QueryAddressesAsync(name, family, _cancellationToken).ConfigureAwait(false);
            CheckAnswer(answer, family == AddressFamily.InterNetworkV6 ? "AAAA" : "A", name);
            return answer.Records;
        }

        /// <summary>The client's PTR names whose A/AAAA records lead back to it (§5.5); errors on single names are skipped.</summary>
        private async Task<IReadOnlyList<string>> ValidatedNamesAsync()
        {
            var ptr = await _checker._dns.QueryPtrAsync(_client, _cancellationToken).ConfigureAwait(false);
            if (ptr.IsTemporaryFailure)
                return [];
            CountVoid(ptr, "PTR", ReverseDnsName.For(_client));
            var validated = new List<string>();
            foreach (var name in ptr.Records.Take(MaxPtrNames))
            {
                if (!IsQueryableName(name))
                    continue;
                var answer = await _checker._dns.QueryAddressesAsync(name, Family, _cancellationToken).ConfigureAwait(false);
                if (answer.IsTemporaryFailure)
                    continue;
                CountVoid(answer, "A", name);
                if (answer.Records.Any(a => a.Equals(_client)))
                    validated.Add(name);
            }
            return validated;
        }

        private async Task<string> ValidatedNameAsync(string domain)
        {
            if (_validatedName is not null)
                return _validatedName;
            var names = await ValidatedNamesAsync().ConfigureAwait(false);
            _validatedName = names.FirstOrDefault(n => string.Equals(n, domain, StringComparison.OrdinalIgnoreCase))
                ?? names.FirstOrDefault(n => IsSameOrSubdomain(n, domain))
                ?? names.FirstOrDefault()
                ?? "unknown";
            return _validatedName;
        }

        private static bool IsSameOrSubdomain(string name, string domain)
        {
            name = name.TrimEnd('.');
            domain = domain.TrimEnd('.');
            return name.Equals(domain, StringComparison.OrdinalIgnoreCase)
                || name.EndsWith("." + domain, StringComparison.OrdinalIgnoreCase);
        }

        /// <summary>Expands a domain-spec; null when the result cannot be a DNS name (such a name matches nothing).</summary>
        private async Task<string?> ExpandDomainAsync(SpfMacroString spec, string domain)
        {
            var expanded = await ExpandAsync(spec, domain).ConfigureAwait(false);
            expanded = expanded.TrimEnd('.');
            // Over-long results lose labels from the left until they fit (§7.3).
            while (expanded.Length > 253)
            {
                var dot = expanded.IndexOf('.');
                if (dot < 0)
                    return null;
                expanded = expanded[(dot + 1)..];
            }
            return IsQueryableName(expanded) ? expanded : null;
        }

        private async Task<string> ExpandAsync(SpfMacroString spec, string domain)
        {
            var validated = spec.UsesValidatedName ? await ValidatedNameAsync(domain).ConfigureAwait(false) : "";
            return spec.Expand(letter => MacroValue(letter, domain, validated));
        }

        private string MacroValue(char letter, string domain, string validatedName) => letter switch
        {
            's' => _sender,
            'l' => _localPart,
            'o' => _senderDomain,
            'd' => domain,
            // IPv6 as dotted nibbles; upper case as the OpenSPF suite expects (DNS ignores case, explanations show it).
            'i' => Family == AddressFamily.InterNetworkV6
                ? string.Join('.', Convert.ToHexString(_client.GetAddressBytes()).ToCharArray())
                : _client.ToString(),
            'p' => validatedName,
            'v' => Family == AddressFamily.InterNetworkV6 ? "ip6" : "in-addr",
            'h' => _helo,
            'c' => _client.ToString(),
            'r' => string.IsNullOrEmpty(Options.ReceiverDomain) ? "unknown" : Options.ReceiverDomain,
            't' => Options.TimeProvider.GetUtcNow().ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture),
            _ => throw new SpfPermErrorException($"unknown macro letter '{letter}'"),
        };

        /// <summary>The explanation for a fail (§6.2): the exp= TXT record expanded, or the default when anything about it is wrong.</summary>
        private async Task<string> ExplainAsync(SpfRecord record, string domain)
        {
            if (record.Explanation is not null)
            {
                try
                {
                    var target = await ExpandDomainAsync(record.Explanation, domain).ConfigureAwait(false);
                    if (target is not null)
                    {
                        var answer = await _checker._dns.QueryTxtAsync(target, _cancellationToken).ConfigureAwait(false);
                        if (answer.Status == DnsLookupStatus.Success && answer.Records.Count == 1)
                            return await ExpandAsync(SpfMacroString.Parse(answer.Records[0], explanation: true), domain).ConfigureAwait(false);
                    }
                }
                catch (SpfPermErrorException)
                {
                    // A broken explanation falls back to the default (§6.2).
                }
            }
            try
            {
                return await ExpandAsync(SpfMacroString.Parse(Options.DefaultExplanation, explanation: true), domain).ConfigureAwait(false);
            }
            catch (SpfPermErrorException)
            {
                return Options.DefaultExplanation;
            }
        }

        private void CountDnsLookup(string term)
        {
            if (++_dnsLookups > Options.MaxDnsLookups)
                throw new SpfPermErrorException($"more than {Options.MaxDnsLookups} DNS-querying terms (at '{term}')");
        }

        private void CheckAnswer<T>(DnsAnswer<T> answer, string type, string name)
        {
            if (answer.IsTemporaryFailure)
                throw new SpfTempErrorException($"DNS {type} lookup for '{name}' failed: {answer.Error ?? answer.Status.ToString()}");
            CountVoid(answer, type, name);
        }

        private void CountVoid<T>(DnsAnswer<T> answer, string type, string name)
        {
            if (answer.IsVoid && ++_voidLookups > Options.MaxVoidLookups)
                throw new SpfPermErrorException($"more than {Options.MaxVoidLookups} void DNS lookups (at {type} '{name}')");
        }
    }
}
