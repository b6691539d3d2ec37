using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;

namespace Postern.ExoEmulator;

/// <summary>Just enough JWT (RFC 7519, JWS compact form) for client assertions and access tokens.</summary>
internal static class Jwt
{
    public static string Sign(JsonObject payload, RSA key, string? keyId = null)
    {
        var header = new JsonObject { ["alg"] = "RS256", ["typ"] = "JWT" };
        if (keyId is not null)
            header["kid"] = keyId;
        var signingInput = Base64Url(Encoding.UTF8.GetBytes(header.ToJsonString())) + "." + Base64Url(Encoding.UTF8.GetBytes(payload.ToJsonString()));
        var signature = key.SignData(Encoding.ASCII.GetBytes(signingInput), HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        return signingInput + "." + Base64Url(signature);
    }

    /// <summary>Splits a compact JWS; null when it is not one.</summary>
    public static (JsonObject Header, JsonObject Payload, byte[] SigningInput, byte[] Signature)? Parse(string token)
    {
        var parts = token.Split('.');
        if (parts.Length != 3)
            return null;
        try
        {
            var header = JsonNode.Parse(FromBase64Url(parts[0]))!.AsObject();
            var payload = JsonNode.Parse(FromBase64Url(parts[1]))!.AsObject();
            return (header, payload, Encoding.ASCII.GetBytes(parts[0] + "." + parts[1]), FromBase64Url(parts[2]));
        }
        catch (Exception ex) when (ex is FormatException or System.Text.Json.JsonException or InvalidOperationException)
        {
            return null;
        }
    }

    /// <summary>Checks an RS256 or PS256 signature with the key.</summary>
    public static bool Verify(JsonObject header, byte[] signingInput, byte[] signature, RSA key)
    {
        var padding = header["alg"]?.GetValue<string>() switch
        {
            "RS256" => RSASignaturePadding.Pkcs1,
            "PS256" => RSASignaturePadding.Pss,
            _ => null,
        };
        return padding is not null && key.VerifyData(signingInput, signature, HashAlgorithmName.SHA256, padding);
    }

    public static string Base64Url(byte[] data) =>
        Convert.ToBase64String(data).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    public static byte[] FromBase64Url(string text)
    {
        var s = text.Replace('-', '+').Replace('_', '/');
        return Convert.FromBase64String(s.PadRight(s.Length + ((4 - (s.Length % 4)) % 4), '='));
    }
}
