using Pipelines.Cli;
using Pipelines.Cli.Commands;
using Spectre.Console.Cli;

var app = new CommandApp();
app.Configure(c =>
{
    c.SetApplicationName("pipelines");
    c.PropagateExceptions();
    c.AddCommand<ValidateCommand>("validate").WithDescription("Check a workflow file; exit 0, or 2 with every problem.");
    c.AddCommand<PlanCommand>("plan").WithDescription("Validate, list and plan a workflow and show its tasks, without running anything.");
    c.AddCommand<RunCommand>("run").WithDescription("Plan, run and gather a workflow; wait and print the summary.");
    c.AddCommand<StatusCommand>("status").WithDescription("Show a run's state and task counts.");
    c.AddCommand<WorkerCommand>("worker").WithDescription("Run task and gather jobs, and the triggers, from PostgreSQL until stopped.");
    c.AddCommand<WorkersCommand>("workers").WithDescription("Show every live worker's harvesting figures: owner load, harvested CPU, tasks running, suspended, vacated.");
    c.AddCommand<ServerCommand>("server").WithDescription("Serve the REST API and the dashboard, and run jobs (PostgreSQL; roles from Server:Roles).");
    c.AddCommand<RegisterCommand>("register").WithDescription("Register a workflow with a trigger block: new objects under trigger.uri start runs.");
    c.AddCommand<UnregisterCommand>("unregister").WithDescription("Stop triggering a registered workflow.");
    c.AddBranch<CommonSettings>("triggers", b =>
    {
        b.SetDescription("List registered triggers: last poll, objects seen, runs started.");
        b.SetDefaultCommand<TriggersCommand>();
        b.AddCommand<IngestCommand>("ingest").WithDescription("Feed an S3 event notification body (FILE or - for stdin) to the triggers' ledger.");
    });
    c.AddBranch<CommonSettings>("s3", b =>
    {
        b.SetDescription("Make a bucket, list it, copy files in and out, with the engine's S3 settings.");
        b.AddCommand<S3Commands.MakeBucketCommand>("mb").WithDescription("Make a bucket: pipelines s3 mb s3://raw");
        b.AddCommand<S3Commands.ListCommand>("ls").WithDescription("List objects under a prefix: pipelines s3 ls s3://raw/run-42/");
        b.AddCommand<S3Commands.CopyCommand>("cp").WithDescription("Copy a file or folder in, or objects out: pipelines s3 cp sample-data/fastq s3://raw/run-42/");
    });
});

using var stop = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) =>
{
    e.Cancel = true;
    stop.Cancel();
};
using var sigterm = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGTERM, ctx =>
{
    ctx.Cancel = true;
    stop.Cancel();
});

return await Cli.Guard(() => app.RunAsync(args, stop.Token), verbose: args.Contains("-v") || args.Contains("--verbose"), Console.Error);
