using System.Collections;
using System.Management.Automation;
using System.Management.Automation.Runspaces;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Postern.ExoEmulator;
using Postern.M365.Exo;

namespace Postern.M365.Tests;

/// <summary>What one run of a script printed.</summary>
internal sealed record ScriptRun(IReadOnlyList<string> Steps, IReadOnlyList<string> Warnings);

/// <summary>
/// PowerShell hosted in-process, as an admin's session after Connect-ExchangeOnline: every Exchange
/// cmdlet of the reference is a function with that cmdlet's parameters, forwarding what was bound to
/// the emulated tenant and returning PSObjects with the properties Exchange returns. So the generated
/// script runs unchanged, its parameters are bound by PowerShell, and an unknown one is an error.
/// </summary>
internal sealed class ExchangeShell : IDisposable
{
    /// <summary>Parameters every advanced function has; declaring them again is an error.</summary>
    private static readonly HashSet<string> CommonParameters = new(
        [.. Cmdlet.CommonParameters, .. Cmdlet.OptionalCommonParameters], StringComparer.OrdinalIgnoreCase);

    private static readonly Lazy<string> Functions = new(DefineFunctions);

    private readonly Runspace _runspace;

    public ExchangeShell(ExoEmulator.ExoEmulator emulator, EmulatedTenant tenant)
    {
        _runspace = RunspaceFactory.CreateRunspace(InitialSessionState.CreateDefault2());
        _runspace.Open();
        _runspace.SessionStateProxy.SetVariable("PosternExchange", new Bridge(emulator, tenant));
        using var ps = PowerShell.Create(_runspace);
        ps.AddScript(Functions.Value).Invoke();
        if (ps.HadErrors)
            throw new InvalidOperationException("defining the Exchange functions failed: " + string.Join("; ", ps.Streams.Error));
    }

    /// <summary>Runs the script as `&amp; script.ps1 -RelayKey KEY [-Activate]`; throws with what it printed when it stops on an error.</summary>
    public ScriptRun Run(string script, string relayKey, bool activate)
    {
        using var ps = PowerShell.Create(_runspace);
        ps.AddScript(script).AddParameter("RelayKey", relayKey);
        if (activate)
            ps.AddParameter("Activate");
        try
        {
            ps.Invoke();
        }
        catch (RuntimeException error)
        {
            throw new InvalidOperationException($"the script stopped: {error.Message}\n{string.Join("\n", Steps(ps))}", error);
        }
        var steps = Steps(ps);
        if (ps.Streams.Error.Count > 0)
            throw new InvalidOperationException($"the script wrote errors: {string.Join("; ", ps.Streams.Error)}\n{string.Join("\n", steps)}");
        return new ScriptRun(steps, ps.Streams.Warning.Select(w => w.Message).ToArray());
    }

    public void Dispose() => _runspace.Dispose();

    private static string[] Steps(PowerShell ps) => ps.Streams.Information.Select(i => i.MessageData?.ToString() ?? "").ToArray();

    /// <summary>One function per Exchange cmdlet of exo-cmdlets.json, all its parameters declared, forwarding $PSBoundParameters.</summary>
    private static string DefineFunctions()
    {
        var text = new StringBuilder();
        foreach (var cmdlet in CmdletReference.Default.Cmdlets.Where(c => c != "Connect-ExchangeOnline"))
        {
            var parameters = CmdletReference.Default.Parameters(cmdlet).ToArray();
            var confirms = parameters.Any(p => p.Name == "Confirm");
            var declared = parameters.Where(p => !CommonParameters.Contains(p.Name))
                .Select(p => (p.Type == "SwitchParameter" ? "[switch]$" : "$") + p.Name);
            text.Append("function ").Append(cmdlet).Append(" {\n")
                .Append("    [CmdletBinding(").Append(confirms ? "SupportsShouldProcess = $true" : "").Append(")]\n")
                .Append("    param(").Append(string.Join(", ", declared)).Append(")\n")
                .Append("    $PosternExchange.Invoke('").Append(cmdlet).Append("', $PSBoundParameters)\n")
                .Append("}\n");
        }
        return text.ToString();
    }

    /// <summary>The call from PowerShell into the emulator; recorded by it like an InvokeCommand request.</summary>
    public sealed class Bridge(ExoEmulator.ExoEmulator emulator, EmulatedTenant tenant)
    {
        public PSObject[] Invoke(string cmdlet, IDictionary bound)
        {
            var parameters = new JsonObject();
            foreach (DictionaryEntry entry in bound)
            {
                var name = (string)entry.Key;
                // Common parameters other than -Confirm/-WhatIf never reach Exchange.
                if (!CommonParameters.Contains(name) || name is "Confirm" or "WhatIf")
                    parameters[name] = ToJson(entry.Value);
            }
            return emulator.Invoke(tenant, cmdlet, parameters).Select(ToPSObject).ToArray();
        }

        private static JsonNode? ToJson(object? value) => value switch
        {
            null => null,
            PSObject wrapped => ToJson(wrapped.BaseObject),
            SwitchParameter s => JsonValue.Create(s.IsPresent),
            bool b => JsonValue.Create(b),
            int i => JsonValue.Create(i),
            long l => JsonValue.Create(l),
            string s => JsonValue.Create(s),
            IDictionary table => new JsonObject(table.Cast<DictionaryEntry>().Select(e => KeyValuePair.Create((string)e.Key, ToJson(e.Value)))),
            IEnumerable list => new JsonArray([.. list.Cast<object?>().Select(ToJson)]),
            _ => throw new ArgumentException($"no JSON for a parameter value of type {value.GetType().FullName}"),
        };

        /// <summary>An output object as Exchange's cmdlets give it: properties only, multi-valued ones as arrays.</summary>
        private static PSObject ToPSObject(JsonObject output)
        {
            var result = new PSObject();
            foreach (var (name, value) in output)
            {
                if (!name.Contains('@', StringComparison.Ordinal))
                    result.Properties.Add(new PSNoteProperty(name, FromJson(value)));
            }
            return result;
        }

        private static object? FromJson(JsonNode? node) => node switch
        {
            null => null,
            JsonArray array => array.Select(FromJson).ToArray(),
            JsonObject o => ToPSObject(o),
            JsonValue v => v.GetValueKind() switch
            {
                JsonValueKind.String => v.GetValue<string>(),
                JsonValueKind.True => true,
                JsonValueKind.False => false,
                JsonValueKind.Number => v.TryGetValue<int>(out var i) ? i : v.GetValue<double>(),
                _ => null,
            },
            _ => throw new ArgumentException($"unexpected JSON {node.GetType().Name}"),
        };
    }
}
