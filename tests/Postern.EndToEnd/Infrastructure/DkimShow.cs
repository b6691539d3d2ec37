using System.Text.RegularExpressions;

namespace Postern.EndToEnd.Infrastructure;

/// <summary>One selector as `postern dkim show` prints it: its state and the three DNS records.</summary>
public sealed record DkimShowKey(
    string Selector, string State, (string Name, string Value) TenantTxt, (string Name, string Target) TenantCname, (string Name, string Value) OperatorTxt);

/// <summary>Reads `postern dkim show` / `dkim rotate` output into one <see cref="DkimShowKey"/> per "Selector …" block.</summary>
public static partial class DkimShow
{
    public static IReadOnlyList<DkimShowKey> Parse(string output)
    {
        var keys = new List<DkimShowKey>();
        var blocks = SelectorLine().Matches(output);
        for (var i = 0; i < blocks.Count; i++)
        {
            var end = i + 1 < blocks.Count ? blocks[i + 1].Index : output.Length;
            var block = output[blocks[i].Index..end];
            var txt = block.Split('\n').Select(PythonDkim.ParseTxtLine).OfType<(string Name, string Value)>().ToArray();
            var cname = CnameLine().Match(block);
            Assert.True(txt.Length == 2 && cname.Success, $"expected a TXT line, a CNAME line and the operator's TXT line in:\n{block}");
            keys.Add(new DkimShowKey(blocks[i].Groups["selector"].Value, blocks[i].Groups["state"].Value,
                txt[0], (cname.Groups["name"].Value, cname.Groups["target"].Value), txt[1]));
        }
        return keys;
    }

    [GeneratedRegex(@"^Selector (?<selector>\S+): (?<state>active|pending|retired)\b", RegexOptions.Multiline)]
    private static partial Regex SelectorLine();

    [GeneratedRegex(@"^\s*(?<name>\S+)\.\s+IN\s+CNAME\s+(?<target>\S+)\.\s*$", RegexOptions.Multiline)]
    private static partial Regex CnameLine();
}
