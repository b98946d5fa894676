using System.Globalization;
using Pipelines.Model;
using Pipelines.Settings;

namespace Pipelines.Tenancy;

/// <summary>
/// The one home of the rule that a step or a function asks for no more than its tenant's
/// quotas allow (<see cref="QuotaSettings.MaxCpus"/>, <see cref="QuotaSettings.MaxMemory"/>,
/// <see cref="QuotaSettings.MaxTimeout"/>, <see cref="QuotaSettings.MaxDisk"/>): refused at submit
/// (every path: the API, the CLI's remote submit, a trigger's run) and at deploy, one problem per
/// field, before anything is listed or kept. A field the file leaves unset is checked at its
/// default (1 CPU, 512Mi, the timeout's default), except <c>disk</c>, whose unset value means the
/// worker's own limit (Worker:MaxOutputBytes), which the operator sets for every tenant alike.
/// </summary>
internal static class ResourceCeiling
{
    /// <summary>The fields of <paramref name="resources"/> (at <paramref name="path"/>, e.g. <c>steps[2].resources</c>) over <paramref name="quotas"/>.</summary>
    public static IReadOnlyList<WorkflowProblem> Problems(Resources resources, string path, QuotaSettings quotas)
    {
        var problems = new List<WorkflowProblem>();
        if (quotas.MaxCpus is { } cpus && resources.Cpus > cpus)
        {
            Add("cpus", Number(resources.Cpus) + " CPUs", Number(cpus), nameof(QuotaSettings.MaxCpus));
        }

        if (quotas.MaxMemory is { } memory && resources.MemoryBytes > memory)
        {
            Add("memory", Quantities.FormatSize(resources.MemoryBytes), Quantities.FormatSize(memory), nameof(QuotaSettings.MaxMemory));
        }

        if (quotas.MaxTimeout is { } timeout && resources.Timeout > timeout)
        {
            Add("timeout", SettingsBinder.FormatDuration(resources.Timeout), SettingsBinder.FormatDuration(timeout), nameof(QuotaSettings.MaxTimeout));
        }

        if (quotas.MaxDisk is { } disk && resources.DiskBytes > disk)
        {
            Add("disk", Quantities.FormatSize(resources.DiskBytes), Quantities.FormatSize(disk), nameof(QuotaSettings.MaxDisk));
        }

        return problems;

        void Add(string field, string asked, string limit, string quota) =>
            problems.Add(new WorkflowProblem($"{path}.{field}", $"{asked} is over this tenant's limit of {limit} (quota {quota})", 0, 0));
    }

    /// <summary>Refuses (<see cref="WorkflowInvalidException"/>) a workflow of <paramref name="tenant"/> with a step over its quotas.</summary>
    public static void Check(Workflow workflow, TenantId tenant, TenantOptions options)
    {
        var quotas = options.Settings(tenant).Quotas;
        var problems = workflow.Steps.SelectMany((s, i) => Problems(s.Resources, $"steps[{i}].resources", quotas)).ToList();
        if (problems.Count > 0)
        {
            throw new WorkflowInvalidException("the submitted workflow", problems);
        }
    }

    private static string Number(double value) => value.ToString("0.###", CultureInfo.InvariantCulture);
}
