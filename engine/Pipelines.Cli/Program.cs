using Pipelines.Cli;
using Pipelines.Cli.Commands;
using Spectre.Console.Cli;

if (VersionInfo.Asked(args))
{
    return VersionInfo.Print(json: args.Contains("--json"));
}

var app = new CommandApp();
app.Configure(c =>
{
    c.SetApplicationName("pipelines");
    c.PropagateExceptions();
    c.SetInterceptor(new LogFormatOption());
    c.AddCommand<ValidateCommand>("validate").WithDescription("Check a workflow file; exit 0, or 2 with every problem.");
    c.AddCommand<PlanCommand>("plan").WithDescription("Validate, list and plan a workflow and show its tasks, without running anything.");
    c.AddCommand<RunCommand>("run").WithDescription("Plan, run and gather a workflow; wait and print the summary.");
    c.AddCommand<UsageCommand>("usage").WithDescription("What a tenant used and what it cost, by day or hour (--since 30d, --by hour, --run, --function); --csv, --jsonl or --parquet FILE export the records.");
    c.AddCommand<StatusCommand>("status").WithDescription("Show a run's state, task counts (held tasks and why), results and errors; --json for scripts.");
    c.AddCommand<RunsCommand>("runs").WithDescription("List recent runs, newest first (--state, --workflow, --since, --limit); like `nextflow log`.");
    c.AddCommand<CancelCommand>("cancel").WithDescription("Cancel a run: queued tasks never start, running containers are stopped, the run ends cancelled.");
    c.AddCommand<LogsCommand>("logs").WithDescription("Print a run's step logs, or one task's: logs RUN [[TASK]] [[--follow]].");
    c.AddCommand<LineageCommand>("lineage").WithDescription("Say what produced a task output or a results file (or one row: --row N, --key VALUE): run, task, step, image, command, worker, times, inputs.");
    c.AddCommand<ExplainCommand>("explain").WithDescription("Why a run's tasks ran or were taken from the cache: explain RUN [[TASK]] (TASK: index or task id).");
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
    c.AddBranch<CommonSettings>("function", b =>
    {
        b.SetDescription("Deploy, list, show and delete functions on a `pipelines server` (docs/functions.md).");
        b.AddCommand<FunctionDeployCommand>("deploy").WithDescription("Validate a function file and deploy it: a changed file makes a new version.");
        b.AddCommand<FunctionListCommand>("list").WithDescription("Every function's current version.");
        b.AddCommand<FunctionShowCommand>("show").WithDescription("A function: its limits, versions, requests, errors, latency and warm containers.");
        b.AddCommand<FunctionDeleteCommand>("delete").WithDescription("Delete a function with its versions and invocations.");
    });
    c.AddCommand<InvokeCommand>("invoke").WithDescription("Invoke a function with a file as its input: pipelines invoke NAME FILE [[-o OUT]].");
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
