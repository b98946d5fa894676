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
    c.AddCommand<ServerCommand>("server").WithDescription("Serve the REST API and the dashboard, and run jobs (PostgreSQL; roles from Server:Roles).");
    c.AddCommand<RegisterCommand>("register").WithDescription("Register a workflow with a trigger block: new objects under trigger.uri start runs.");
    c.AddCommand<UnregisterCommand>("unregister").WithDescription("Stop triggering a registered workflow.");
    c.AddBranch<CommonSettings>("triggers", b =>
    {
        b.SetDescription("List registered triggers: last poll, objects seen, runs started.");
        b.SetDefaultCommand<TriggersCommand>();
        b.AddCommand<IngestCommand>("ingest").WithDescription("Feed an S3 event notification body (FILE or - for stdin) to the triggers' ledger.");
    });
    c.AddBranch<CommonSettings>("algorithm", b =>
    {
        b.SetDescription("Versioned algorithm images in the algorithm store: push once, run on any worker (docs/algorithms.md).");
        b.AddCommand<AlgorithmCommands.PushCommand>("push").WithDescription("Push a local image or a `docker save` tarball: pipelines algorithm push NAME VERSION IMAGE");
        b.AddCommand<AlgorithmCommands.ListCommand>("list").WithDescription("List algorithms, their versions and channels.");
        b.AddCommand<AlgorithmCommands.ShowCommand>("show").WithDescription("Show an algorithm's versions (digest, tags, notes) and recent loads on workers.");
        b.AddCommand<AlgorithmCommands.DeleteCommand>("delete").WithDescription("Delete a version (and its image from the store when no other version has it).");
        b.AddCommand<AlgorithmCommands.PromoteCommand>("promote").WithDescription("Make a version the stable one.");
        b.AddCommand<AlgorithmCommands.CanaryCommand>("canary").WithDescription("Make a version the canary: pipelines algorithm canary NAME VERSION --percent 10");
        b.AddCommand<AlgorithmCommands.AbortCommand>("abort").WithDescription("End an algorithm's canary.");
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
