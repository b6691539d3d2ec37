using YamlDotNet.RepresentationModel;

namespace Postern.Core.Tests.Authentication;

/// <summary>
/// Finds the shared conformance corpora: a "shared/conformance" folder beside the repository (CI checks
/// shared/ out next to the clone), found by walking up from the test binaries.
/// </summary>
internal static class ConformanceData
{
    private static readonly Lazy<string?> Root = new(FindRoot);

    /// <summary>The corpus folder, or a failure that says where it was looked for.</summary>
    public static string Directory => Root.Value
        ?? throw new InvalidOperationException(
            $"shared/conformance was not found beside any parent of {AppContext.BaseDirectory}; check out the shared folder next to the repository.");

    public static string PathOf(params string[] parts) => Path.Combine([Directory, .. parts]);

    public static string ReadText(params string[] parts) => File.ReadAllText(PathOf(parts));

    /// <summary>Every document of a multi-document YAML file.</summary>
    public static IReadOnlyList<YamlMappingNode> LoadYamlDocuments(params string[] parts)
    {
        var stream = new YamlStream();
        using (var reader = new StringReader(ReadText(parts)))
            stream.Load(reader);
        return stream.Documents.Select(d => d.RootNode).OfType<YamlMappingNode>().ToArray();
    }

    private static string? FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "shared", "conformance");
            if (System.IO.Directory.Exists(candidate))
                return candidate;
        }
        return null;
    }
}

/// <summary>Small helpers for YamlDotNet's representation model.</summary>
internal static class YamlNodes
{
    public static YamlNode? Get(this YamlMappingNode map, string key) =>
        map.Children.TryGetValue(new YamlScalarNode(key), out var node) ? node : null;

    public static string? Scalar(this YamlMappingNode map, string key) => (map.Get(key) as YamlScalarNode)?.Value;

    public static string Text(this YamlNode node) => ((YamlScalarNode)node).Value ?? "";
}
