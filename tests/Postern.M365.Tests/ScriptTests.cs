using System.Text.RegularExpressions;
using Postern.Core.Tenants;
using Postern.M365.Blueprints;
using Postern.M365.Exo;
using Postern.M365.Rendering;

namespace Postern.M365.Tests;

public sealed partial class ScriptTests
{
    public static TheoryData<ProvisioningProfile> Profiles() => new(Enum.GetValues<ProvisioningProfile>());

    /// <summary>The scripts as reviewed; POSTERN_UPDATE_GOLDEN=1 rewrites them after an intended change.</summary>
    [Theory]
    [MemberData(nameof(Profiles))]
    public void The_script_of_each_profile_is_the_reviewed_one(ProvisioningProfile profile)
    {
        var script = PowerShellScript.Render(TestTenants.Blueprint(profile, relayKey: null));
        var name = ProvisioningProfiles.Format(profile) + ".ps1";
        var source = Path.Combine(CmdletReferenceTests.RepositoryRoot(), "tests", "Postern.M365.Tests", "Golden", name);
        if (Environment.GetEnvironmentVariable("POSTERN_UPDATE_GOLDEN") == "1")
            File.WriteAllText(source, script);
        Assert.Equal(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Golden", name)), script);
    }

    public static TheoryData<ProvisioningProfile, OutboundMode, bool> Variants()
    {
        var data = new TheoryData<ProvisioningProfile, OutboundMode, bool>();
        foreach (var profile in Enum.GetValues<ProvisioningProfile>())
            foreach (var outbound in Enum.GetValues<OutboundMode>())
                foreach (var scoped in new[] { false, true })
                    data.Add(profile, outbound, scoped);
        return data;
    }

    /// <summary>Every Exchange cmdlet, parameter and literal value in the script is in exo-cmdlets.json, splatted hashtables included.</summary>
    [Theory]
    [MemberData(nameof(Variants))]
    public void Every_command_in_the_script_is_in_the_cmdlet_reference(ProvisioningProfile profile, OutboundMode outbound, bool scoped)
    {
        var scope = scoped ? new ProvisioningScope(["alice@contoso.com"], ["bob@contoso.com"]) : null;
        var script = PowerShellScript.Render(TestTenants.Blueprint(profile, outbound, scope: scope, relayKey: null));
        var problems = ScriptCheck.Problems(script);
        Assert.Empty(problems);
        Assert.True(ScriptCheck.ExchangeCalls(script) > 20);
    }

    [Fact]
    public void The_script_check_finds_what_exchange_would_refuse()
    {
        Assert.Contains(ScriptCheck.Problems("Set-TransportRule -Identity 'x' -Enabled $false"), p => p.Contains("-Enabled: no such parameter", StringComparison.Ordinal));
        Assert.Contains(ScriptCheck.Problems("Set-TransportRules -Identity 'x'"), p => p.Contains("Set-TransportRules", StringComparison.Ordinal));
        Assert.Contains(ScriptCheck.Problems("$desired = [ordered]@{\n    TlsSettings = 'Strict'\n}\nNew-OutboundConnector -Name 'x' @desired"), p => p.Contains("'Strict' is not one of", StringComparison.Ordinal));
        Assert.Contains(ScriptCheck.Problems("New-TenantAllowBlockListSpoofItems -Identity Default -SpoofType Everything"), p => p.Contains("'Everything'", StringComparison.Ordinal));
    }

    [Fact]
    public void Without_a_key_the_script_asks_for_it_and_with_one_it_holds_it_once()
    {
        var asking = PowerShellScript.Render(TestTenants.Blueprint(ProvisioningProfile.Relay, relayKey: null));
        Assert.Contains("[string]$RelayKey = $env:POSTERN_RELAY_KEY", asking, StringComparison.Ordinal);
        Assert.Contains("Read-Host", asking, StringComparison.Ordinal);
        Assert.DoesNotContain(Blueprint.RelayKeyPlaceholder, asking, StringComparison.Ordinal);

        var holding = PowerShellScript.Render(TestTenants.Blueprint(ProvisioningProfile.Relay));
        Assert.Single(Regex.Matches(holding, Regex.Escape(TestTenants.RelayKey)));
        Assert.Contains($"$RelayKey = '{TestTenants.RelayKey}'", holding, StringComparison.Ordinal);
        Assert.Contains("keep it as secret as the key itself", holding, StringComparison.Ordinal);
    }

    /// <summary>
    /// Every call that changes the tenant sits in a branch taken only when a read just before found the
    /// item missing or different: a check on the script's text, for every variant; <see cref="ScriptRunTests"/>
    /// runs the script itself in PowerShell twice against the emulator.
    /// </summary>
    [Theory]
    [MemberData(nameof(Profiles))]
    public void Every_change_in_the_script_is_guarded_by_a_read(ProvisioningProfile profile)
    {
        var lines = PowerShellScript.Render(TestTenants.Blueprint(profile, relayKey: null)).Split('\n');
        for (var i = 0; i < lines.Length; i++)
        {
            var change = ChangeCmdlet().Match(lines[i]);
            if (!change.Success)
                continue;
            var guard = lines.Take(i).Reverse().Select(l => l.Trim()).FirstOrDefault(l => l.StartsWith("if (", StringComparison.Ordinal) || l.StartsWith("elseif (", StringComparison.Ordinal) || l.StartsWith("else", StringComparison.Ordinal));
            Assert.True(guard is not null, $"line {i + 1} '{lines[i].Trim()}' changes the tenant unconditionally");
            Assert.DoesNotContain("$Activate", lines[i], StringComparison.Ordinal);
        }
        Assert.Contains("if ($Activate) {", lines.Select(l => l.Trim()));
        Assert.DoesNotContain(lines, l => l.TrimStart().StartsWith("Enable-TransportRule", StringComparison.Ordinal) && !l.Contains("$name", StringComparison.Ordinal));
    }

    [GeneratedRegex(@"^\s*(New|Set|Remove|Enable|Disable)-[A-Za-z]+ ")]
    private static partial Regex ChangeCmdlet();
}

/// <summary>Reads the PowerShell Postern writes and checks its Exchange calls against the cmdlet reference.</summary>
internal static partial class ScriptCheck
{
    private static readonly HashSet<string> PowerShellCommands = new(StringComparer.OrdinalIgnoreCase)
    {
        "Write-Host", "Write-Warning", "Read-Host", "Get-Command", "Where-Object", "ForEach-Object", "Sort-Object", "Select-Object", "Out-Null",
    };

    public static int ExchangeCalls(string script) => CommandToken().Matches(script).Count(m => CmdletReference.Default.HasCmdlet(m.Value));

    public static IReadOnlyList<string> Problems(string script)
    {
        var reference = CmdletReference.Default;
        var problems = new List<string>();
        var functions = FunctionDefinition().Matches(script).Select(m => m.Groups[1].Value).ToHashSet(StringComparer.OrdinalIgnoreCase);
        var nouns = reference.Cmdlets.Select(c => c[(c.IndexOf('-') + 1)..]).ToHashSet(StringComparer.OrdinalIgnoreCase);
        var desired = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        var clearable = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        Dictionary<string, string>? block = null;
        var lines = script.Split('\n');
        for (var number = 1; number <= lines.Length; number++)
        {
            var line = lines[number - 1];
            var code = StripComment(line);
            if (block is not null)
            {
                if (code.Trim() == "}")
                {
                    block = null;
                    continue;
                }
                foreach (Match entry in HashtableEntry().Matches(code))
                    block[entry.Groups[1].Value] = entry.Groups[2].Value.Trim();
                continue;
            }
            if (code.TrimStart().StartsWith("$desired = [ordered]@{", StringComparison.Ordinal))
            {
                desired.Clear();
                block = desired;
                continue;
            }
            if (code.TrimStart().StartsWith("$clearable = [ordered]@{", StringComparison.Ordinal))
            {
                block = clearable;
                continue;
            }
            foreach (Match token in CommandToken().Matches(code))
            {
                var command = token.Value;
                if (PowerShellCommands.Contains(command) || functions.Contains(command))
                    continue;
                var noun = command[(command.IndexOf('-') + 1)..];
                if (!reference.HasCmdlet(command))
                {
                    problems.Add($"line {number}: '{command}' is not a cmdlet in the reference" + (nouns.Contains(noun) ? "" : " (nor a PowerShell command the script may use)"));
                    continue;
                }
                var rest = Arguments(code[(token.Index + token.Length)..]);
                foreach (Match parameter in Parameter().Matches(rest))
                {
                    var name = parameter.Groups[1].Value;
                    var text = parameter.Groups[2].Success ? parameter.Groups[2].Value : parameter.Groups[3].Success ? parameter.Groups[3].Value : null;
                    var value = Literal(text);
                    // A switch without a value, a variable or an expression: only the name can be checked here.
                    var known = text is not null && (value is not null || text == "$null");
                    problems.AddRange(reference.ValidateParameter(command, name, value, checkValue: known).Select(p => $"line {number}: {p}"));
                }
                if (rest.Contains("@desired", StringComparison.Ordinal) || rest.Contains("@changes", StringComparison.Ordinal))
                {
                    var splatted = new Dictionary<string, string>(desired, StringComparer.OrdinalIgnoreCase);
                    if (rest.Contains("@changes", StringComparison.Ordinal) && command == "Set-TransportRule")
                        foreach (var (k, v) in clearable)
                            splatted.TryAdd(k, v);
                    var type = Literal(desired.GetValueOrDefault("ConnectorType")) as string;
                    foreach (var (name, text) in splatted)
                    {
                        var value = Literal(text);
                        problems.AddRange(reference.ValidateParameter(command, name, value, type, checkValue: value is not null || text == "$null")
                            .Select(p => $"line {number} (splatted): {p}"));
                    }
                }
            }
            foreach (Match assignment in ChangeAssignment().Matches(code))
            {
                var setter = FollowingSetter(lines, number);
                if (setter is null)
                    problems.Add($"line {number}: $changes['{assignment.Groups[1].Value}'] is set but no Set- cmdlet follows");
                else
                    problems.AddRange(reference.ValidateParameter(setter, assignment.Groups[1].Value, null, checkValue: false).Select(p => $"line {number}: {p}"));
            }
        }
        if (clearable.Count > 0)
            foreach (var (name, text) in clearable)
                problems.AddRange(reference.ValidateParameter("Set-TransportRule", name, Literal(text), checkValue: Literal(text) is not null || text == "$null").Select(p => "$clearable: " + p));
        return problems;
    }

    /// <summary>A literal as the value Exchange receives; expressions and variables are not checked (null).</summary>
    private static object? Literal(string? text)
    {
        if (text is null)
            return null;
        text = text.Trim();
        if (text == "$true")
            return true;
        if (text == "$false")
            return false;
        if (int.TryParse(text, System.Globalization.NumberStyles.AllowLeadingSign, System.Globalization.CultureInfo.InvariantCulture, out var number))
            return number;
        if (text.StartsWith('\'') && text.EndsWith('\'') && text.Length >= 2)
            return text[1..^1].Replace("''", "'", StringComparison.Ordinal);
        if (text.StartsWith("@(", StringComparison.Ordinal) && text.EndsWith(')'))
        {
            var items = QuotedString().Matches(text).Select(m => m.Value[1..^1].Replace("''", "'", StringComparison.Ordinal)).ToArray();
            return text.Contains('$') ? null : items;
        }
        if (BareWord().IsMatch(text))
            return text;
        return null;
    }

    /// <summary>The command's arguments: up to a pipe, a closing brace, or the parenthesis that encloses the command.</summary>
    private static string Arguments(string rest)
    {
        var depth = 0;
        var quoted = false;
        for (var i = 0; i < rest.Length; i++)
        {
            var c = rest[i];
            if (c == '\'')
                quoted = !quoted;
            else if (quoted)
                continue;
            else if (c == '(')
                depth++;
            else if (c == ')' && depth-- == 0)
                return rest[..i];
            else if (c is '|' or '}' && depth == 0)
                return rest[..i];
        }
        return rest;
    }

    private static string? FollowingSetter(string[] lines, int number)
    {
        foreach (var line in lines.Skip(number))
        {
            var match = CommandToken().Match(StripComment(line));
            if (match.Success && match.Value.StartsWith("Set-", StringComparison.Ordinal))
                return match.Value;
        }
        return null;
    }

    private static string StripComment(string line)
    {
        var inQuote = false;
        for (var i = 0; i < line.Length; i++)
        {
            if (line[i] == '\'')
                inQuote = !inQuote;
            else if (line[i] == '#' && !inQuote)
                return line[..i];
        }
        return line;
    }

    [GeneratedRegex(@"(?<![\w$'-])[A-Z][a-z]+-[A-Z][A-Za-z]+(?![\w-])")]
    private static partial Regex CommandToken();

    [GeneratedRegex(@"function\s+([A-Za-z]+-[A-Za-z]+)")]
    private static partial Regex FunctionDefinition();

    [GeneratedRegex(@"(?:^|;)\s*([A-Za-z]+)\s*=\s*([^;]+)")]
    private static partial Regex HashtableEntry();

    [GeneratedRegex(@"(?<=\s)-([A-Za-z]+)(?::(\$\w+)|\s+('(?:[^']|'')*'|@\([^)]*\)|\$?[\w.:\\*/-]+))?")]
    private static partial Regex Parameter();

    [GeneratedRegex(@"\$changes\['([A-Za-z]+)'\]\s*=")]
    private static partial Regex ChangeAssignment();

    [GeneratedRegex(@"'(?:[^']|'')*'")]
    private static partial Regex QuotedString();

    [GeneratedRegex(@"^[A-Za-z][A-Za-z0-9]*$")]
    private static partial Regex BareWord();
}
