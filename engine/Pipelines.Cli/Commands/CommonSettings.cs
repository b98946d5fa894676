using System.ComponentModel;
using Spectre.Console.Cli;

namespace Pipelines.Cli.Commands;

/// <summary>Options every command takes.</summary>
public class CommonSettings : CommandSettings
{
    [CommandOption("-c|--config <FILE>")]
    [Description("A JSON configuration file (see docs/configuration.md).")]
    public string? Config { get; init; }

    [CommandOption("-v|--verbose")]
    [Description("Log what the engine does.")]
    public bool Verbose { get; init; }

    [CommandOption("--log-format <FORMAT>")]
    [Description("How log lines are written: text (default) or json, one object per line with run, task, attempt and trace ids (Logging:Format).")]
    public string? LogFormat { get; init; }
}

/// <summary>A workflow file and overrides.</summary>
public class WorkflowSettings : CommonSettings
{
    [CommandArgument(0, "<FILE>")]
    [Description("The workflow YAML file.")]
    public string File { get; init; } = "";

    [CommandOption("--set <KEY=VALUE>")]
    [Description("Override a field, e.g. --set input.batch=10 --set output.uri=/tmp/out (repeatable).")]
    public string[] Set { get; init; } = [];
}
