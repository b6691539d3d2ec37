using System.Text.Json.Nodes;

namespace Postern.ExoEmulator;

/// <summary>
/// A cmdlet failure the way Exchange Online's admin API reports it: an OData error whose
/// details message is "errorId|exception type|text" (exo-rest.md, "Errors").
/// </summary>
public sealed class ExoError(int status, string exceptionType, string message, string errorId = "") : Exception(message)
{
    public int Status { get; } = status;

    public string ExceptionType { get; } = exceptionType;

    public string ErrorId { get; } = errorId;

    public static ExoError NotFound(string what, string identity) =>
        new(404, "Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException",
            $"The operation couldn't be performed because object '{identity}' couldn't be found on '{what}'.", "Ex6F9304");

    public static ExoError Validation(string message) =>
        new(400, "Microsoft.Exchange.Management.Tasks.ValidationException", message, "Ex0C3E9A");

    public static ExoError Binding(string message) =>
        new(400, "System.Management.Automation.ParameterBindingException", message);

    public static ExoError AlreadyExists(string message) =>
        new(400, "Microsoft.Exchange.Configuration.Tasks.ManagementObjectAlreadyExistsException", message, "Ex5E1B6C");

    public JsonObject ToJson() => new()
    {
        ["error"] = new JsonObject
        {
            ["code"] = Status == 404 ? "NotFound" : "BadRequest",
            ["message"] = "Error executing cmdlet",
            ["details"] = new JsonArray(new JsonObject
            {
                ["code"] = "Client",
                ["target"] = "",
                ["message"] = $"{ErrorId}|{ExceptionType}|{Message}",
            }),
            ["innererror"] = new JsonObject
            {
                ["message"] = "Error executing cmdlet",
                ["type"] = "Microsoft.Exchange.Admin.OData.Core.ODataServiceException",
                ["internalexception"] = new JsonObject
                {
                    ["message"] = Message,
                    ["type"] = "Microsoft.Exchange.Management.PSDirectInvoke.DirectInvokeCmdletExecutionException",
                },
            },
        },
        ["adminapi.warnings@odata.type"] = "#Collection(String)",
        ["@adminapi.warnings"] = new JsonArray(),
    };
}
