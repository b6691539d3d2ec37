using Microsoft.Extensions.Logging;
using Postern.Core.Authentication;
using Postern.Core.Configuration;

namespace Postern.Core.Certificates;

/// <summary>
/// The deployment's ARC sealing key. A configured PEM is used when given; otherwise one is made once
/// under DATA/keys (mode 600), and its DNS record is logged so the operator can publish it.
/// </summary>
public static class ArcKey
{
    public static DkimSigningKey Load(PosternOptions options, ILogger logger)
    {
        var configured = options.Signing.ArcKeyPath;
        var path = configured.Length > 0 ? configured : Path.Combine(options.DataDir, "keys", $"arc-{options.Signing.ArcSelector}.pem");
        if (!File.Exists(path))
        {
            if (configured.Length > 0)
                throw new PosternException($"Postern:Signing:ArcKeyPath '{configured}' does not exist");
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            var key = DkimSigningKey.GenerateRsa(2048);
            File.WriteAllText(path, key.ExportPem());
            if (!OperatingSystem.IsWindows())
                File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            var record = new DkimDnsRecord(options.Signing.ResolveArcDomain(options.ProductDomain), options.Signing.ArcSelector, key.KeyType, key.PublicKeyBase64);
            logger.LogWarning("Made an ARC sealing key at {Path}; publish: {Record}", path, record.ZoneFileLine);
            return key;
        }
        try
        {
            return DkimSigningKey.FromPem(File.ReadAllText(path));
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            throw new PosternException($"Postern:Signing:ArcKeyPath: cannot read the ARC key '{path}': {ex.Message}");
        }
    }
}
