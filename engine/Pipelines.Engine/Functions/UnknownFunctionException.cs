namespace Pipelines.Functions;

/// <summary>An invocation was recorded for a function that the function store does not hold (it was deleted meanwhile); nothing was written.</summary>
internal sealed class UnknownFunctionException(string name, Exception? inner = null)
    : PipelinesException($"function {name} does not exist", retryHelps: false, inner)
{
    public string Name { get; } = name;
}
