using System.Reflection;

namespace Pipelines.Tests;

/// <summary>Every test class says its lane, once, so that `scripts/test --unit` cannot miss a new one or run one that needs a service.</summary>
[Unit]
public sealed class LaneTests
{
    [Fact]
    public void Every_test_class_is_marked_unit_or_integration_and_not_both()
    {
        var unmarked = new List<string>();
        var both = new List<string>();
        foreach (var type in TestClasses())
        {
            var unit = type.IsDefined(typeof(UnitAttribute), inherit: false);
            var integration = type.IsDefined(typeof(IntegrationAttribute), inherit: false);
            if (!unit && !integration)
            {
                unmarked.Add(type.FullName!);
            }
            else if (unit && integration)
            {
                both.Add(type.FullName!);
            }
        }

        Assert.True(unmarked.Count == 0, "test classes without [Unit] or [Integration]: " + string.Join(", ", unmarked));
        Assert.True(both.Count == 0, "test classes marked both [Unit] and [Integration]: " + string.Join(", ", both));
    }

    [Fact]
    public void The_suite_has_tests_in_both_lanes_and_this_class_is_found_among_them()
    {
        var classes = TestClasses().ToList();
        Assert.Contains(typeof(LaneTests), classes);
        Assert.Contains(classes, t => t.IsDefined(typeof(UnitAttribute), inherit: false));
        Assert.Contains(classes, t => t.IsDefined(typeof(IntegrationAttribute), inherit: false));
    }

    [Fact]
    public void The_lane_trait_is_what_the_filter_of_scripts_test_names()
    {
        var discoverer = new LaneDiscoverer();
        var unit = discoverer.GetTraits(new Xunit.Sdk.ReflectionAttributeInfo(typeof(LaneTests).GetCustomAttributesData().Single(a => a.AttributeType == typeof(UnitAttribute))));
        Assert.Equal([new("Lane", "unit")], unit);
        var script = File.ReadAllText(Path.Combine(Support.TestEnvironment.RepoRoot, "scripts", "test"));
        Assert.Contains("--filter \"Lane=unit\"", script, StringComparison.Ordinal);
    }

    /// <summary>The classes xunit runs tests of: not abstract, with a [Fact] or [Theory] of their own or inherited.</summary>
    private static IEnumerable<Type> TestClasses() =>
        typeof(LaneTests).Assembly.GetTypes().Where(t => t is { IsClass: true, IsAbstract: false } &&
            t.GetMethods(BindingFlags.Public | BindingFlags.Instance | BindingFlags.Static).Any(m => m.IsDefined(typeof(FactAttribute), inherit: true)));
}
