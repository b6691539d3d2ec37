using YamlDotNet.Core;
using YamlDotNet.Core.Events;

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

    /// <summary>Every document of a multi-document YAML file, as <see cref="YamlTree"/> maps.</summary>
    public static IReadOnlyList<IReadOnlyDictionary<string, object>> LoadYamlDocuments(params string[] parts) =>
        YamlTree.LoadDocuments(BlankEmptyBlockScalars(ReadText(parts)));

    /// <summary>
    /// The ARC suite writes some empty block scalars ("cv: |", "AS: |") as a line of spaces followed by the next
    /// key. PyYAML reads that as an empty value; YamlDotNet rejects the spaces ("extra spaces in first line").
    /// Only in that case — whitespace-only lines after a block indicator, then a line no deeper than the key —
    /// are the spaces dropped. Nothing inside a non-empty block is touched.
    /// </summary>
    private static string BlankEmptyBlockScalars(string yaml)
    {
        var lines = yaml.Split('\n');
        for (var i = 0; i < lines.Length; i++)
        {
            var trimmed = lines[i].TrimEnd();
            if (!(trimmed.EndsWith(": |", StringComparison.Ordinal) || trimmed.EndsWith(":|", StringComparison.Ordinal) || trimmed.EndsWith(" |", StringComparison.Ordinal)))
                continue;
            var keyIndent = lines[i].Length - lines[i].TrimStart(' ').Length;
            var j = i + 1;
            while (j < lines.Length && lines[j].Trim().Length == 0)
                j++;
            var nextIndent = j < lines.Length ? lines[j].Length - lines[j].TrimStart(' ').Length : 0;
            if (nextIndent > keyIndent)
                continue;
            for (var k = i + 1; k < j; k++)
                lines[k] = "";
        }
        return string.Join('\n', lines);
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

/// <summary>
/// YAML read into plain values: strings, lists and maps. Built from YamlDotNet's parser events rather than its
/// representation model because the ARC validation suite repeats four test ids in one mapping; PyYAML (and so
/// the upstream harness and the "171 tests" count) keeps the last, and so does this.
/// </summary>
internal static class YamlTree
{
    public static IReadOnlyList<IReadOnlyDictionary<string, object>> LoadDocuments(string text)
    {
        var parser = new Parser(new StringReader(text));
        var documents = new List<IReadOnlyDictionary<string, object>>();
        parser.Consume<StreamStart>();
        while (parser.TryConsume<DocumentStart>(out _))
        {
            if (ReadNode(parser) is IReadOnlyDictionary<string, object> root)
                documents.Add(root);
            parser.Consume<DocumentEnd>();
        }
        return documents;
    }

    private static object ReadNode(IParser parser)
    {
        if (parser.TryConsume<Scalar>(out var scalar))
            return scalar.Value;
        if (parser.TryConsume<SequenceStart>(out _))
        {
            var list = new List<object>();
            while (!parser.TryConsume<SequenceEnd>(out _))
                list.Add(ReadNode(parser));
            return list;
        }
        if (parser.TryConsume<MappingStart>(out _))
        {
            var map = new Dictionary<string, object>(StringComparer.Ordinal);
            while (!parser.TryConsume<MappingEnd>(out _))
            {
                var key = (string)ReadNode(parser);
                map[key] = ReadNode(parser);
            }
            return map;
        }
        throw new InvalidDataException($"unexpected YAML event {parser.Current}");
    }

    public static string? Str(this IReadOnlyDictionary<string, object> map, string key) => map.TryGetValue(key, out var v) ? v as string : null;

    public static IReadOnlyDictionary<string, object>? Map(this IReadOnlyDictionary<string, object> map, string key) =>
        map.TryGetValue(key, out var v) ? v as IReadOnlyDictionary<string, object> : null;
}
