namespace Postern.Core.Authentication;

/// <summary>
/// The DNS records a domain publishes for a DKIM (or ARC) key: the TXT record itself, and the CNAME form
/// that delegates the selector to a zone Postern's operator controls, so keys can be rotated without
/// asking the tenant to touch DNS again (the way Microsoft 365's selector1/selector2 CNAMEs work).
/// </summary>
/// <param name="Domain">The signing domain (d=).</param>
/// <param name="Selector">The selector (s=).</param>
/// <param name="KeyType">k=: "rsa" or "ed25519".</param>
/// <param name="PublicKeyBase64">p=.</param>
public sealed record DkimDnsRecord(string Domain, string Selector, string KeyType, string PublicKeyBase64)
{
    /// <summary>Longest character-string a TXT record may hold (RFC 1035 §3.3).</summary>
    public const int MaxCharacterString = 255;

    /// <summary>"selector._domainkey.domain", where the TXT record goes.</summary>
    public string Name => $"{Selector}._domainkey.{Domain.TrimEnd('.')}";

    /// <summary>The record text: "v=DKIM1; k=rsa; p=…".</summary>
    public string Value => $"v=DKIM1; k={KeyType}; p={PublicKeyBase64}";

    /// <summary>The value cut into character-strings of at most 255 octets, as DNS needs for 2048-bit keys.</summary>
    public IReadOnlyList<string> CharacterStrings => Value.Chunk(MaxCharacterString).Select(c => new string(c)).ToArray();

    /// <summary>The record as a zone-file line: name, TXT, and the quoted character-strings.</summary>
    public string ZoneFileLine => $"{Name}. IN TXT {string.Join(' ', CharacterStrings.Select(s => $"\"{s}\""))}";

    /// <summary>
    /// Where the tenant's selector points when delegated: "selector._domainkey.domain.delegationZone",
    /// unique per domain and selector, so two domains can never collide.
    /// </summary>
    public string DelegationTarget(string delegationZone) => $"{Name}.{delegationZone.Trim('.')}";

    /// <summary>The CNAME the tenant publishes instead of the TXT record, as a zone-file line.</summary>
    public string CnameZoneFileLine(string delegationZone) => $"{Name}. IN CNAME {DelegationTarget(delegationZone)}.";

    /// <summary>The TXT record the operator publishes at the delegation target.</summary>
    public string DelegatedZoneFileLine(string delegationZone) =>
        $"{DelegationTarget(delegationZone)}. IN TXT {string.Join(' ', CharacterStrings.Select(s => $"\"{s}\""))}";
}
