namespace Pipelines.Tests;

/// <summary>
/// Which lane this test process runs. `scripts/test --unit` sets PIPELINES_TEST_LANE=unit (and
/// points the services' variables at nothing): then the tests' helpers refuse a service or a
/// child process at once, so a unit test that needs one fails saying so instead of waiting.
/// </summary>
public static class TestLane
{
    public const string Variable = "PIPELINES_TEST_LANE";

    public const string Unit = "unit";

    public const string Integration = "integration";

    public static bool IsUnit => Environment.GetEnvironmentVariable(Variable) == Unit;

    /// <summary>Throws in the unit lane: WHAT (a service, a child process) is not for unit tests.</summary>
    public static void Refuse(string what)
    {
        if (IsUnit)
        {
            throw new InvalidOperationException($"{what} in the unit lane (scripts/test --unit): a test that needs it is marked [Integration], not [Unit]");
        }
    }
}
