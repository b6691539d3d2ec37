using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Postern.Core;
using Postern.M365.Credentials;

namespace Postern.M365.Tests;

public sealed class CredentialTests
{
    [Fact]
    public async Task Connect_keeps_the_private_key_encrypted_and_readable_by_the_owner_only()
    {
        await using var exchange = await EmulatedTenantHarness.StartAsync();
        using var cli = new CliHarness();
        var (exit, output, error) = await cli.ConnectAsync(exchange);
        Assert.True(exit == 0, error);

        var store = new M365Store(cli.DataDir);
        var path = store.PathOf(TestTenants.ContosoId);
        var text = await File.ReadAllTextAsync(path);
        using var rsa = exchange.AppCertificate.GetRSAPrivateKey()!;
        var privateKey = rsa.ExportPkcs8PrivateKey();
        Assert.DoesNotContain(Convert.ToBase64String(privateKey)[..40], text, StringComparison.Ordinal);
        Assert.DoesNotContain("pfx-password", text, StringComparison.Ordinal);
        var record = store.Find(TestTenants.ContosoId)!;
        var blob = Convert.FromBase64String(record.EncryptedCertificate);
        Assert.Equal(-1, blob.AsSpan().IndexOf(privateKey.AsSpan(0, 64)));
        Assert.Equal(exchange.AppCertificate.Thumbprint, record.CertificateThumbprint);
        Assert.Contains("encrypted (AES-256-GCM)", output, StringComparison.Ordinal);

        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(store.Protector.KeyPath));
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(Path.GetDirectoryName(path)!));
        }

        using var connection = store.Connection(record).Certificate;
        Assert.True(connection.HasPrivateKey);
        Assert.Equal(exchange.AppCertificate.Thumbprint, connection.Thumbprint);
    }

    [Fact]
    public void A_blob_opens_only_with_its_key_and_for_its_tenant()
    {
        var directory = Directory.CreateTempSubdirectory("postern-key-");
        try
        {
            var protector = new CredentialProtector(Path.Combine(directory.FullName, "a.key"));
            var blob = protector.Protect([1, 2, 3], "tenant-a");
            Assert.Equal([1, 2, 3], protector.Unprotect(blob, "tenant-a"));
            Assert.Contains("do not open", Assert.Throws<PosternException>(() => protector.Unprotect(blob, "tenant-b")).Message, StringComparison.Ordinal);
            var other = new CredentialProtector(Path.Combine(directory.FullName, "b.key"));
            other.Protect([9], "x");
            Assert.Throws<PosternException>(() => other.Unprotect(blob, "tenant-a"));
            blob[^1] ^= 1;
            Assert.Throws<PosternException>(() => protector.Unprotect(blob, "tenant-a"));
            File.Delete(Path.Combine(directory.FullName, "a.key"));
            Assert.Contains("is missing", Assert.Throws<PosternException>(() => protector.Unprotect(blob, "tenant-a")).Message, StringComparison.Ordinal);
        }
        finally
        {
            directory.Delete(recursive: true);
        }
    }

    [Fact]
    public async Task A_wrong_password_or_an_app_exchange_does_not_know_stores_nothing()
    {
        await using var exchange = await EmulatedTenantHarness.StartAsync();
        using var cli = new CliHarness();
        var pfx = Path.Combine(cli.DataDir, "other.pfx");
        await File.WriteAllBytesAsync(pfx, exchange.AppCertificate.Export(System.Security.Cryptography.X509Certificates.X509ContentType.Pkcs12, "right"));
        var wrong = Path.Combine(cli.DataDir, "wrong.txt");
        await File.WriteAllTextAsync(wrong, "wrong");

        var refused = await cli.RunAsync("m365", "connect", "contoso", "--app-id", EmulatedTenantHarness.AppId, "--certificate", pfx, "--certificate-password-file", wrong, "--skip-check");
        Assert.Equal(1, refused.Exit);
        Assert.StartsWith($"error: --certificate '{pfx}' cannot be read as a PFX with the given password", refused.Error, StringComparison.Ordinal);

        var unknownApp = await cli.ConnectAsync(exchange, "--app-id", Guid.NewGuid().ToString());
        Assert.Equal(1, unknownApp.Exit);
        Assert.Contains("Entra ID refused the app's token request: AADSTS700016", unknownApp.Error, StringComparison.Ordinal);
        Assert.Contains("nothing was stored", unknownApp.Error, StringComparison.Ordinal);
        Assert.Single(unknownApp.Error.Trim().Split('\n'));
        Assert.False(File.Exists(new M365Store(cli.DataDir).PathOf(TestTenants.ContosoId)));
    }
}
