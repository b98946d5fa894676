using System.Globalization;

namespace Pipelines.Runs;

/// <summary>
/// How a user names a task of a run on the command line and in the API: its index (digits) or
/// its task id (any case). One rule for `explain`, `logs` and their endpoints.
/// </summary>
internal static class TaskName
{
    /// <summary>Whether <paramref name="name"/> names the task with this index and id.</summary>
    public static Func<int, string, bool> Matcher(string name)
    {
        // A task id is a long hex digest: digits alone that short are an index.
        var index = -1;
        var byIndex = name.Length < 24 && int.TryParse(name, NumberStyles.None, CultureInfo.InvariantCulture, out index);
        return byIndex
            ? (i, _) => i == index
            : (_, id) => string.Equals(id, name, StringComparison.OrdinalIgnoreCase);
    }
}
