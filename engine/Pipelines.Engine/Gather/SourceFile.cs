using Pipelines.Model;

namespace Pipelines.Gather;

/// <summary>
/// Which input file of a task a gathered row comes from, for the <c>_source_file</c> column. A
/// task of one input: that input. A task of several (a batch): the input that a cell of the row
/// names, as its key (<c>lane1/S001_R1.fastq</c>), its path in the container
/// (<c>/in/lane1/S001_R1.fastq</c>) or its file name when no other input has that name. A row
/// that names none of them (a read pair's summary) comes from the task's inputs together: null.
/// </summary>
internal sealed class SourceFile
{
    private readonly string? _only;
    private readonly Dictionary<string, string?> _names = new(StringComparer.Ordinal);

    public SourceFile(IReadOnlyList<string> inputs)
    {
        if (inputs.Count == 1)
        {
            _only = inputs[0];
            return;
        }

        foreach (var key in inputs)
        {
            _names[key] = key;
            _names[ContainerLayout.InputPath(key)] = key;
        }

        foreach (var group in inputs.GroupBy(k => k[(k.LastIndexOf('/') + 1)..], StringComparer.Ordinal))
        {
            // A file name two inputs share names neither; a key that is also a name stays the key's.
            _names.TryAdd(group.Key, group.Count() == 1 ? group.First() : null);
        }
    }

    /// <summary>The input the row comes from, or null when it names none (or only a shared file name).</summary>
    public string? Of(string?[] row)
    {
        if (_only is not null || _names.Count == 0)
        {
            return _only;
        }

        foreach (var cell in row)
        {
            if (cell is not null && _names.TryGetValue(cell, out var key) && key is not null)
            {
                return key;
            }
        }

        return null;
    }
}
