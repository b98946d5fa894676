namespace Pipelines.Gather;

/// <summary>
/// A task's output file that cannot be read as a table (invalid UTF-8, a wrong number of cells,
/// bad CSV quoting, a header that differs from the other parts). Under <c>on_error: continue</c>
/// the part is left out and reported; under <c>on_error: fail</c> it fails the gather.
/// </summary>
internal sealed class MalformedPartException(string message) : PipelinesException(message, retryHelps: false);
