namespace Pipelines.Tests.Support;

/// <summary>
/// Tests that build a Hangfire host in this process (a worker, or a server in-process): Hangfire's
/// job filters (the retry policy, EndWhenJobFails) are process-wide and the last host configured
/// replaces them, so a second host built meanwhile would answer for the first one's failed jobs.
/// They run alone.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class InProcessHangfire
{
    public const string Name = "hangfire in process";
}
