using MimeKit;
using Postern.Core.Authentication;

namespace Postern.Core.Tests.Authentication;

/// <summary>
/// Sign-then-verify with the keys and key-record variants of dkimpy's test data
/// (presigned-vectors.json "keys_for_sign_then_verify"), plus Postern's key and DNS record helpers.
/// </summary>
public sealed class DkimSigningTests
{
    [Theory]
    [InlineData("test.txt", DkimResult.Pass)]
    [InlineData("test2.txt", DkimResult.Pass)] // no k=: rsa is implied
    [InlineData("badversion.txt", DkimResult.PermError)] // "v=DKIM1:" is not version DKIM1
    [InlineData("badk.txt", DkimResult.PermError)] // unknown k=
    [InlineData("test_bad.txt", DkimResult.PermError)] // truncated modulus
    [InlineData("test_tlsrpt.txt", DkimResult.PermError)] // s=tlsrpt: the key is not for email
    public async Task Signs_with_test_private_and_verifies_against_each_record_variant(string recordFile, DkimResult expected)
    {
        var key = DkimSigningKey.FromPem(File.ReadAllText(DkimConformanceTests.DkimpyData("test.private")));
        var message = await SignAsync(key, "test.message", "example.com", "test");
        var dns = new InMemoryDnsResolver().AddTxt("test._domainkey.example.com", File.ReadAllText(DkimConformanceTests.DkimpyData(recordFile)).Trim());

        var result = Assert.Single(await new DkimChecker(dns).VerifyAsync(message));
        Assert.True(expected == result.Result, $"{recordFile}: {result.Keyword} ({result.Reason})");
    }

    [Theory]
    [InlineData("1024_testkey.key", "1024_testkey_wo_markers.pub.txt")]
    [InlineData("1024_testkey.key", "1024_testkey_wo_markers.pub.rsa.txt")] // p= as a bare PKCS#1 RSAPublicKey
    [InlineData("2048_testkey.key", "2048_testkey_wo_markers.pub.txt")]
    [InlineData("2048_testkey.key", "2048_testkey_wo_markers.pub.rsa.txt")]
    [InlineData("2048_testkey_PKCS8.key", "2048_testkey_PKCS8.key.pub.txt")]
    public async Task Rsa_keys_in_pkcs1_and_pkcs8_sign_and_verify(string keyFile, string recordFile)
    {
        var key = DkimSigningKey.FromPem(File.ReadAllText(DkimConformanceTests.DkimpyData(keyFile)));
        var message = await SignAsync(key, "test.message", "example.com", "test");
        var dns = new InMemoryDnsResolver().AddTxt("test._domainkey.example.com", File.ReadAllText(DkimConformanceTests.DkimpyData(recordFile)).Trim());

        var result = Assert.Single(await new DkimChecker(dns).VerifyAsync(message));
        Assert.True(result.Result == DkimResult.Pass, $"{keyFile} with {recordFile}: {result.Keyword} ({result.Reason})");
    }

    [Theory]
    [InlineData("ed25519test.key", "example.net", "test", "v=DKIM1; k=ed25519; p=yi50DjK5O9pqbFpNHklsv9lqaS0ArSYu02qp1S0DW1Y=")]
    [InlineData("rfc8032_7_1.key", "football.example.com", "brisbane", "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=")]
    public async Task Ed25519_seeds_sign_and_verify(string keyFile, string domain, string selector, string record)
    {
        var key = DkimSigningKey.FromEd25519Seed(File.ReadAllText(DkimConformanceTests.DkimpyData(keyFile)));
        Assert.Equal(record[(record.IndexOf("p=", StringComparison.Ordinal) + 2)..], key.PublicKeyBase64);
        var message = await SignAsync(key, "rfc6376.msg", domain, selector);
        var dns = new InMemoryDnsResolver().AddTxt($"{selector}._domainkey.{domain}", record);

        var result = Assert.Single(await new DkimChecker(dns).VerifyAsync(message));
        Assert.True(result.Result == DkimResult.Pass, $"{keyFile}: {result.Keyword} ({result.Reason})");
        Assert.Equal("ed25519-sha256", result.Algorithm);
    }

    [Fact]
    public async Task An_eight_bit_windows_1258_body_signs_and_verifies()
    {
        var key = DkimSigningKey.FromPem(File.ReadAllText(DkimConformanceTests.DkimpyData("test.private")));
        var message = await SignAsync(key, "rfc6376.w1258.msg", "example.com", "test");
        var dns = new InMemoryDnsResolver().AddTxt("test._domainkey.example.com", File.ReadAllText(DkimConformanceTests.DkimpyData("test.txt")).Trim());

        Assert.Equal(DkimResult.Pass, Assert.Single(await new DkimChecker(dns).VerifyAsync(message)).Result);
    }

    [Fact]
    public async Task Refuses_to_sign_a_message_without_from()
    {
        var key = DkimSigningKey.FromPem(File.ReadAllText(DkimConformanceTests.DkimpyData("test.private")));
        var message = await MimeMessage.LoadAsync(DkimConformanceTests.DkimpyData("test_nofrom.message"));
        var signer = new DkimMessageSigner(key, "example.com", "test");

        Assert.Throws<InvalidOperationException>(() => signer.Sign(message));
        Assert.False(message.Headers.Contains(HeaderId.DkimSignature));
    }

    [Fact]
    public async Task A_changed_body_fails_with_a_reason_that_says_so()
    {
        var key = DkimSigningKey.FromPem(File.ReadAllText(DkimConformanceTests.DkimpyData("test.private")));
        var message = await SignAsync(key, "test.message", "example.com", "test");
        var body = Assert.IsType<TextPart>(message.Body);
        body.Text += "tampered\n";
        var dns = new InMemoryDnsResolver().AddTxt("test._domainkey.example.com", File.ReadAllText(DkimConformanceTests.DkimpyData("test.txt")).Trim());

        var result = Assert.Single(await new DkimChecker(dns).VerifyAsync(message));
        Assert.Equal(DkimResult.Fail, result.Result);
        Assert.Contains("body hash", result.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_second_from_header_added_after_signing_breaks_the_signature()
    {
        var key = DkimSigningKey.FromPem(File.ReadAllText(DkimConformanceTests.DkimpyData("test.private")));
        var message = await SignAsync(key, "test.message", "example.com", "test");
        message.Headers.Add(HeaderId.From, "Mallory <ceo@example.com>");
        var dns = new InMemoryDnsResolver().AddTxt("test._domainkey.example.com", File.ReadAllText(DkimConformanceTests.DkimpyData("test.txt")).Trim());

        var result = Assert.Single(await new DkimChecker(dns).VerifyAsync(message));
        Assert.Equal(DkimResult.Fail, result.Result);
    }

    [Fact]
    public async Task Dns_failure_while_fetching_the_key_is_a_temporary_error()
    {
        var key = DkimSigningKey.FromPem(File.ReadAllText(DkimConformanceTests.DkimpyData("test.private")));
        var message = await SignAsync(key, "test.message", "example.com", "test");
        var dns = new InMemoryDnsResolver().AddTimeout("test._domainkey.example.com");

        Assert.Equal(DkimResult.TempError, Assert.Single(await new DkimChecker(dns).VerifyAsync(message)).Result);
        Assert.Equal(DkimResult.PermError, Assert.Single(await new DkimChecker(new InMemoryDnsResolver()).VerifyAsync(message)).Result);
    }

    [Fact]
    public void A_generated_key_round_trips_through_pem_and_its_dns_record_parses()
    {
        var key = DkimSigningKey.GenerateRsa(2048);
        var again = DkimSigningKey.FromPem(key.ExportPem());
        Assert.Equal(key.PublicKeyBase64, again.PublicKeyBase64);

        var record = key.DnsRecord("contoso.com", "postern1");
        Assert.Equal("postern1._domainkey.contoso.com", record.Name);
        Assert.StartsWith("v=DKIM1; k=rsa; p=MII", record.Value, StringComparison.Ordinal);
        Assert.All(record.CharacterStrings, s => Assert.True(s.Length <= 255));
        Assert.Equal(record.Value, string.Concat(record.CharacterStrings));
        Assert.Equal(2048, DkimPublicKeyRecord.Parse(record.Value).KeyBits);
        Assert.Equal("postern1._domainkey.contoso.com. IN CNAME postern1._domainkey.contoso.com.dkim.postern.example.",
            record.CnameZoneFileLine("dkim.postern.example"));
        Assert.StartsWith("postern1._domainkey.contoso.com.dkim.postern.example. IN TXT \"v=DKIM1; k=rsa; p=", record.DelegatedZoneFileLine("dkim.postern.example"),
            StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("k=rsa; v=DKIM1; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDkHlOQoBTzWRiGs5V6NpP3idY6Wk08a5qhdR6wy5bdOKb2jLQiY/J16JYi0Qvx/byYzCNb3W91y3FutACDfzwQ/BC/e/8uBsCR+yz1Lxj+PL6lHvqMKrM3rG4hstT5QjvHO9PzoxZyVYLzBfO2EeC3Ip3G+2kryOTIKT+l/K4w3QIDAQAB", "first tag")]
    [InlineData("v=DKIM1; k=rsa; p=", "revoked")]
    [InlineData("v=DKIM1; k=rsa", "no p=")]
    [InlineData("v=DKIM1; k=rsa; p=!!!", "not base64")]
    [InlineData("v=DKIM1; k=ed25519; p=AAAA", "Ed25519 key is 32 bytes")]
    [InlineData("v=DKIM1; k=rsa; k=rsa; p=AAAA", "not a valid tag list")]
    public void Rejects_unusable_key_records(string record, string reason)
    {
        var ex = Assert.Throws<DkimKeyException>(() => DkimPublicKeyRecord.Parse(record));
        Assert.False(ex.Temporary);
        Assert.Contains(reason, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Reads_key_record_flags_and_folded_p()
    {
        var record = DkimPublicKeyRecord.Parse(
            "v=DKIM1; h=sha256; t=y:s; s=email; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDkHlOQoBTzWRiGs5V6NpP3idY6Wk08a5qhdR6wy5bdOKb2jLQi\r\n Y/J16JYi0Qvx/byYzCNb3W91y3FutACDfzwQ/BC/e/8uBsCR+yz1Lxj+PL6lHvqMKrM3rG4hstT5QjvHO9PzoxZyVYLzBfO2EeC3Ip3G+2kryOTIKT+l/K4w3QIDAQAB");
        Assert.Equal(["sha256"], record.HashAlgorithms);
        Assert.True(record.Testing);
        Assert.True(record.StrictIdentity);
        Assert.Equal(1024, record.KeyBits);
    }

    [Fact]
    public void Refuses_rsa_keys_below_1024_bits() =>
        Assert.Throws<ArgumentOutOfRangeException>(() => DkimSigningKey.GenerateRsa(512));

    private static async Task<MimeMessage> SignAsync(DkimSigningKey key, string file, string domain, string selector)
    {
        var message = await MimeMessage.LoadAsync(DkimConformanceTests.DkimpyData(file));
        new DkimMessageSigner(key, domain, selector).Sign(message);
        // Verify what would go on the wire, not the in-memory object.
        using var wire = new MemoryStream();
        var options = FormatOptions.Default.Clone();
        options.NewLineFormat = NewLineFormat.Dos;
        await message.WriteToAsync(options, wire);
        wire.Position = 0;
        return await MimeMessage.LoadAsync(wire);
    }
}
