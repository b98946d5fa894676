using YamlDotNet.Core;
using YamlDotNet.Core.Tokens;
using YamlDotNet.RepresentationModel;
using Events = YamlDotNet.Core.Events;

namespace Pipelines.Model;

/// <summary>
/// Loads the one YAML document of a user's file (a workflow, a function) into a mapping, or
/// records why it cannot, at the line and column of the problem itself. YamlDotNet does not
/// always say where: some scanner errors carry no mark at all (a tab used as indentation is
/// reported at line 1, column 1), some carry the start of the scalar before the fault rather
/// than the fault (a tab that breaks a plain scalar's indentation), an alias to an anchor that
/// does not exist is found only after the whole stream was read, and a flow collection left
/// open can end in an InvalidOperationException. The scanner and the parser's events know
/// where they are; this reads them. One home for both file kinds.
/// </summary>
internal static class YamlLoader
{
    /// <summary>The words a file kind's messages use: what one document is, and what it starts with.</summary>
    public sealed record Kind(string Name, string StartsWith, string Fields);

    public static readonly Kind Workflow = new("workflow", "'version: 1'", "version, name, input, steps, ...");

    public static readonly Kind Function = new("function", "'name:' and 'image:'", "name, image, mode, command, ...");

    /// <summary>The root mapping, or null with the problem recorded in <paramref name="ctx"/>.</summary>
    public static YamlMappingNode? Load(string yaml, ParseContext ctx, Kind kind)
    {
        // A byte order mark (an editor on Windows writes one) starts the stream, as YAML allows; it
        // is not text: YamlDotNet read it into the first key and counted it as a column.
        if (yaml.StartsWith('\uFEFF'))
        {
            yaml = yaml[1..];
        }

        var stream = new YamlStream();
        var scanner = new FlowWatch(new Scanner(new StringReader(yaml)), yaml);
        var parser = new AliasWatch(new Parser(scanner));
        (int Line, int Column, string Message)? fault = null;
        try
        {
            stream.Load(parser);
        }
        catch (YamlException e)
        {
            fault = Place(e, yaml, scanner, parser);
        }
        catch (InvalidOperationException)
        {
            // YamlDotNet throws this instead of a YamlException on some broken files, e.g. a flow
            // list `[a, b` left open across lines: the collection still open is what to look at.
            fault = scanner.Open is { } open
                ? ((int)open.Start.Line, (int)open.Start.Column, Unclosed(open))
                : ((int)scanner.CurrentPosition.Line, (int)scanner.CurrentPosition.Column, "the text cannot be read from here on; look above for an unclosed '[', '{' or quote");
        }

        // An alias before its anchor: YAML reads an alias only after its anchor, and YamlDotNet
        // takes one from further on without a word (a value then comes from a later line).
        if (fault is null && parser.FirstUndefinedAlias is { } forward)
        {
            fault = ((int)forward.Start.Line, (int)forward.Start.Column, $"the alias *{forward.Value} names no anchor: no &{forward.Value} comes before it in the file (an anchor must come before its aliases)");
        }

        // A tab in a line's indentation, which YAML forbids and YamlDotNet lets through in some
        // places (after a space) or takes for a fault further on (the next line's dedent): the tab
        // is the fault, whatever else was found after it.
        if (scanner.IndentTab is { } tab && (fault is null || tab.Line <= fault.Value.Line))
        {
            fault = (tab.Line, tab.Column, TabMessage(null));
        }

        // A character YAML does not allow in a file (a control character, a lone surrogate):
        // YamlDotNet reads most of them into the text silently, and a NUL ends its reading there.
        if (Unprintable(yaml) is { } bad && (fault is null || bad.Line < fault.Value.Line || (bad.Line == fault.Value.Line && bad.Column <= fault.Value.Column)))
        {
            fault = bad;
        }

        if (fault is { } f)
        {
            ctx.Problems.Add(new WorkflowProblem("(file)", "not valid YAML: " + f.Message, f.Line, f.Column));
            return null;
        }

        if (stream.Documents.Count == 0)
        {
            ctx.Problems.Add(new WorkflowProblem("(file)", $"the file is empty; a {kind.Name} starts with {kind.StartsWith}", 0, 0));
            return null;
        }

        if (stream.Documents.Count > 1)
        {
            // At the second document's start (its '---'), the line to remove, not its first key.
            var second = parser.SecondDocument ?? stream.Documents[1].RootNode.Start;
            ctx.Problems.Add(new WorkflowProblem("(file)", $"holds more than one YAML document (a second one starts here); put one {kind.Name} in each file", (int)second.Line, (int)second.Column));
        }

        if (stream.Documents[0].RootNode is not YamlMappingNode map)
        {
            ctx.Add(stream.Documents[0].RootNode, "(file)", $"must be a mapping of fields ({kind.Fields})");
            return null;
        }

        return map;
    }

    /// <summary>A parser of a YAML text that refuses nesting past <see cref="FlowWatch.MaxDepth"/> (a YamlException), for a value read on its own (--set).</summary>
    public static IParser Parser(string yaml) => new Parser(new FlowWatch(new Scanner(new StringReader(yaml)), yaml));

    /// <summary>Where a YAML error is, and what to say: the fault's own place, not the start of what was being read.</summary>
    private static (int Line, int Column, string Message) Place(YamlException e, string yaml, FlowWatch scanner, AliasWatch parser)
    {
        var unmarked = IsEmpty(e.Start) && IsEmpty(e.End);
        if (e is TooDeepException)
        {
            return ((int)e.Start.Line, (int)e.Start.Column, e.Message);
        }

        if (e is AnchorNotFoundException && parser.FirstUndefinedAlias is { } alias)
        {
            return ((int)alias.Start.Line, (int)alias.Start.Column, $"the alias *{alias.Value} names no anchor: no &{alias.Value} comes before it in the file");
        }

        if (e.Message.Contains(" tab ", StringComparison.Ordinal))
        {
            // The tab itself: where the scanner stopped (an error without a mark), or the error's
            // end (its start is the scalar before the tab).
            var at = unmarked ? scanner.CurrentPosition : e.End;
            var tab = FindTab(yaml, at);
            return (tab.Line, tab.Column, TabMessage(e.Message));
        }

        if (scanner.Open is { } open && (e.Message.Contains("did not find expected ','", StringComparison.Ordinal)
            || e.Message.Contains("did not find expected node content", StringComparison.Ordinal)))
        {
            return ((int)open.Start.Line, (int)open.Start.Column, Unclosed(open) + " (" + e.Message.TrimEnd('.') + ")");
        }

        if (e.Message.StartsWith("Duplicate key ", StringComparison.Ordinal))
        {
            return ((int)e.Start.Line, (int)e.Start.Column, $"the key '{e.Message["Duplicate key ".Length..]}' appears twice in this mapping; keep one");
        }

        if (e.Message.Contains("quoted scalar, found unexpected end of stream", StringComparison.Ordinal)
            || e.Message.Contains("quoted scalar, found wrong indentation", StringComparison.Ordinal))
        {
            // The quote that opens the text, which runs on to where the scanner gave up.
            return ((int)e.Start.Line, (int)e.Start.Column, "the quoted text that starts here is not closed on its line; look for a missing closing quote (" + e.Message.TrimEnd('.') + ")");
        }

        if (scanner.LongQuote is { } quote && !unmarked && e.Start.Line >= quote.Start.Line && e.Start.Line <= quote.End.Line + 1)
        {
            // A quote left open where the lines after it are indented deeper (the value of a key
            // that holds a block, e.g. `steps: "x`) runs on to the next quote in the file, and the
            // fault shows only there: the quote that starts the run is what to look at.
            return ((int)quote.Start.Line, (int)quote.Start.Column, $"the quoted text that starts here runs on to line {quote.End.Line}, column {quote.End.Column}; look for a missing closing quote (then: " + e.Message.TrimEnd('.') + ")");
        }

        // An unknown escape, a bad hexadecimal digit in one, a block scalar's bad indicator: at
        // the error's end (its start is the quote, or the '|').
        var atEnd = e.Message.Contains("escape", StringComparison.Ordinal) || e.Message.Contains("hexadecimal", StringComparison.Ordinal)
            || e.Message.Contains("block scalar", StringComparison.Ordinal);
        var mark = unmarked ? scanner.CurrentPosition : atEnd ? e.End : e.Start;
        return ((int)mark.Line, (int)mark.Column, e.InnerException?.Message ?? e.Message);
    }

    /// <summary>
    /// The first character that is not in YAML's printable set (tab, line ends, U+0020-U+007E,
    /// U+00A0-U+D7FF, U+E000-U+FFFD, and pairs of surrogates), or that YAML 1.1 reads as a line
    /// break (U+0085, U+2028, U+2029), with its place.
    /// </summary>
    private static (int Line, int Column, string Message)? Unprintable(string yaml)
    {
        var line = 1;
        var column = 1;
        for (var i = 0; i < yaml.Length; i++)
        {
            var c = yaml[i];
            if (c == '\n')
            {
                line++;
                column = 1;
                continue;
            }

            if (char.IsHighSurrogate(c) && i + 1 < yaml.Length && char.IsLowSurrogate(yaml[i + 1]))
            {
                i++;
                column++;
                continue;
            }

            if (c == '\uFFFD')
            {
                // What a reader puts in place of bytes that are not UTF-8 (a file saved as Latin-1 or
                // Windows-1252, a cut multi-byte character): the text here is lost, not read.
                return (line, column, "the file is not valid UTF-8 here (bytes that are not UTF-8 text are read as U+FFFD, the replacement character); save the file as UTF-8, or write a real U+FFFD as \"\\uFFFD\" in double quotes");
            }

            if (c is '\u0085' or '\u2028' or '\u2029')
            {
                // YAML 1.1's other line breaks: YamlDotNet ends the line there, so a value holding one
                // is cut or folded into another text without a word.
                return (line, column, $"the character U+{(int)c:X4} ({Describe(c)}) is read by YAML as a line break, which would change this value silently; remove it, or write it as an escape in double quotes (\"{Escape(c)}\")");
            }

            var printable = c is '\t' or '\r' or (>= ' ' and <= '~') or (>= '\u00A0' and <= '\uD7FF') or (>= '\uE000' and <= '\uFFFD');
            if (!printable)
            {
                return (line, column, $"the character U+{(int)c:X4} ({Describe(c)}) is not allowed in a YAML file; remove it, or write it as an escape in double quotes (\"{Escape(c)}\")");
            }

            if (c == '\r')
            {
                // The CR of a CRLF pair is the line's end, not a column; a CR alone is a line's end too.
                if (i + 1 >= yaml.Length || yaml[i + 1] != '\n')
                {
                    line++;
                    column = 1;
                }

                continue;
            }

            column++;
        }

        return null;
    }

    private static string Escape(char c) => c <= '\u00FF' ? $"\\x{(int)c:x2}" : $"\\u{(int)c:x4}";

    private static string Describe(char c) => c switch
    {
        '\0' => "a NUL",
        '\u0085' => "a next-line character",
        '\u2028' => "a line separator",
        '\u2029' => "a paragraph separator",
        < ' ' or (>= '\u007F' and <= '\u009F') => "a control character",
        _ when char.IsSurrogate(c) => "half of a surrogate pair",
        _ => "not a character",
    };

    private static string TabMessage(string? yamlDotNet) =>
        "a tab is used as indentation here; YAML indents with spaces only" + (yamlDotNet is null ? "" : " (" + yamlDotNet.TrimEnd('.') + ")");

    private static string Unclosed(Token open) =>
        open is FlowSequenceStart ? "the '[' opened here is never closed; look for a missing ']' or ','" : "the '{' opened here is never closed; look for a missing '}' or ','";

    private static bool IsEmpty(Mark m) => m.Index == Mark.Empty.Index && m.Line == Mark.Empty.Line && m.Column == Mark.Empty.Column;

    /// <summary>
    /// The tab at or nearest after <paramref name="at"/> on its line (a mark can sit on the line
    /// break before the tab's line), or the mark itself when there is none.
    /// </summary>
    private static (int Line, int Column) FindTab(string yaml, Mark at)
    {
        var index = (int)Math.Clamp(at.Index, 0, yaml.Length);
        var line = (int)at.Line;
        var column = (int)at.Column;
        for (var i = index; i < yaml.Length; i++)
        {
            switch (yaml[i])
            {
                case '\t':
                    return (line, column);
                case '\n':
                    line++;
                    column = 1;
                    break;
                case '\r' when i + 1 < yaml.Length && yaml[i + 1] == '\n':
                    break;
                case ' ' or '\r':
                    column++;
                    break;
                default:
                    // Text before any tab: the mark was the place.
                    return ((int)at.Line, (int)at.Column);
            }
        }

        return ((int)at.Line, (int)at.Column);
    }

    /// <summary>
    /// The scanner as the parser reads it, watched for the flow collections ('[' or '{') still
    /// open (it reads ahead of the parser's events, so it knows of a '{' the parser never
    /// reached), and for the first tab in the indentation of a line of block context.
    /// </summary>
    private sealed class FlowWatch(IScanner inner, string text) : IScanner
    {
        /// <summary>
        /// How deep collections may nest. YamlDotNet loads a nested collection by recursion, so a
        /// few kilobytes of '[' (or of indented '- ') end the process with a stack overflow, which
        /// no catch stops: refused at the token that goes deeper. A workflow nests a few levels.
        /// </summary>
        public const int MaxDepth = 64;

        private readonly Stack<Token> _open = new();
        private Token? _seen;
        private long _line;
        private int _blocks;

        /// <summary>The first tab in the indentation of a line whose first token is outside a flow collection.</summary>
        public (int Line, int Column)? IndentTab { get; private set; }

        /// <summary>The last quoted scalar that ran over more than one line, if any.</summary>
        public Scalar? LongQuote { get; private set; }

        /// <summary>The innermost flow collection not closed yet.</summary>
        public Token? Open => _open.Count > 0 ? _open.Peek() : null;

        public Mark CurrentPosition => inner.CurrentPosition;

        public Token? Current => inner.Current;

        public bool MoveNext() => Watch(inner.MoveNext());

        public bool MoveNextWithoutConsuming() => Watch(inner.MoveNextWithoutConsuming());

        public void ConsumeCurrent() => inner.ConsumeCurrent();

        private bool Watch(bool moved)
        {
            // A token can be looked at twice (without consuming, then consumed): count it once.
            if (moved && !ReferenceEquals(inner.Current, _seen))
            {
                _seen = inner.Current!;
                if (_seen is not StreamStart && _seen.Start.Line != _line)
                {
                    _line = _seen.Start.Line;
                    if (_open.Count == 0 && IndentTab is null && TabBefore(_seen.Start) is { } column)
                    {
                        IndentTab = ((int)_line, column);
                    }
                }

                switch (_seen)
                {
                    case FlowSequenceStart or FlowMappingStart:
                        _open.Push(_seen);
                        break;
                    case FlowSequenceEnd when _open.Count > 0 && _open.Peek() is FlowSequenceStart:
                    case FlowMappingEnd when _open.Count > 0 && _open.Peek() is FlowMappingStart:
                        // A closer of the other kind closes nothing: what it meets is still open.
                        _open.Pop();
                        break;
                    case BlockSequenceStart or BlockMappingStart:
                        _blocks++;
                        break;
                    case BlockEnd when _blocks > 0:
                        _blocks--;
                        break;
                    case Scalar { Style: ScalarStyle.DoubleQuoted or ScalarStyle.SingleQuoted } quoted when quoted.End.Line > quoted.Start.Line:
                        LongQuote = quoted;
                        break;
                }

                if (_open.Count + _blocks > MaxDepth)
                {
                    throw new TooDeepException(_seen.Start, _seen.End, $"the lists and mappings nest more than {MaxDepth} deep here, deeper than the reader can follow; look for '[', '{{' or '- ' repeated");
                }
            }

            return moved;
        }

        /// <summary>The column of the first tab in the indentation (the leading spaces and tabs) of the mark's line, if any.</summary>
        private int? TabBefore(Mark at)
        {
            var start = (int)Math.Min(at.Index, text.Length);
            while (start > 0 && text[start - 1] != '\n')
            {
                start--;
            }

            for (var i = start; i < text.Length && text[i] is ' ' or '\t'; i++)
            {
                if (text[i] == '\t')
                {
                    return i - start + 1;
                }
            }

            return null;
        }
    }

    /// <summary>Collections nested deeper than the reader can follow.</summary>
    private sealed class TooDeepException(Mark start, Mark end, string message) : YamlException(start, end, message);

    /// <summary>
    /// The parser as the loader reads it, watched for the first alias that names no anchor
    /// defined before it, and for where a second document starts.
    /// </summary>
    private sealed class AliasWatch(IParser inner) : IParser
    {
        private readonly HashSet<string> _anchors = new(StringComparer.Ordinal);
        private int _documents;

        /// <summary>The start of the second document (its '---', or its first token when it has none).</summary>
        public Mark? SecondDocument { get; private set; }

        public Events.ParsingEvent? Current => inner.Current;

        public (string Value, Mark Start)? FirstUndefinedAlias { get; private set; }

        public bool MoveNext()
        {
            if (!inner.MoveNext())
            {
                return false;
            }

            if (inner.Current is Events.DocumentStart start && ++_documents == 2)
            {
                SecondDocument = start.Start;
            }

            if (inner.Current is Events.AnchorAlias alias)
            {
                if (FirstUndefinedAlias is null && !_anchors.Contains(alias.Value.Value))
                {
                    FirstUndefinedAlias = (alias.Value.Value, alias.Start);
                }
            }
            else if (inner.Current is Events.NodeEvent { Anchor.IsEmpty: false } node)
            {
                _anchors.Add(node.Anchor.Value);
            }

            return true;
        }
    }
}
