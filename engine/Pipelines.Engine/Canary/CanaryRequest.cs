using System.Globalization;
using Pipelines.Model;

namespace Pipelines.Canary;

/// <summary>
/// A batch canary asked for at submission (docs/algorithms.md, "Canary for batch runs"): a
/// sample of the run's tasks run again with <see cref="Step"/>'s image replaced by
/// <see cref="Image"/>, and the two compared. The one home of the rules for its flags, for the
/// CLI and the API alike.
/// </summary>
public sealed record CanaryRequest(string Step, string Image, CanarySample Sample, double Tolerance)
{
    /// <summary>The relative tolerance numbers are compared with when none is given.</summary>
    public const double DefaultTolerance = 1e-9;

    /// <summary>The sample taken when none is given.</summary>
    public const string DefaultSample = "5%";

    /// <summary>
    /// The request from its three flags (<c>--candidate STEP=IMAGE</c>, <c>--sample 5%|N</c>,
    /// <c>--tolerance X</c>), or null when none is given. A sample or a tolerance without a
    /// candidate is refused, as is anything malformed, with what to write instead.
    /// </summary>
    public static CanaryRequest? Parse(string? candidate, string? sample, double? tolerance)
    {
        if (candidate is null)
        {
            if (sample is not null || tolerance is not null)
            {
                throw Invalid($"{(sample is not null ? "--sample" : "--tolerance")} needs --candidate STEP=IMAGE: it says how the canary compares, and there is no canary without a candidate");
            }

            return null;
        }

        var eq = candidate.IndexOf('=', StringComparison.Ordinal);
        if (eq <= 0 || eq == candidate.Length - 1)
        {
            throw Invalid($"--candidate '{candidate}' must be STEP=IMAGE, e.g. --candidate stats=my/fastq-stats:2 or --candidate stats=algorithm://fastq-stats@2.0");
        }

        var t = tolerance ?? DefaultTolerance;
        if (!double.IsFinite(t) || t < 0)
        {
            throw Invalid($"--tolerance {t.ToString(CultureInfo.InvariantCulture)} must be a relative tolerance of 0 or more, e.g. 1e-9 (0: numbers must be equal)");
        }

        return new CanaryRequest(candidate[..eq].Trim(), candidate[(eq + 1)..].Trim(), CanarySample.Parse(sample ?? DefaultSample), t);
    }

    /// <summary>The step the candidate replaces, which must be one of the workflow's.</summary>
    public StepSpec StepOf(Workflow workflow) =>
        workflow.Steps.FirstOrDefault(s => s.Name == Step)
        ?? throw Invalid($"--candidate names step '{Step}', which is not a step of workflow {workflow.Name} (steps: {string.Join(", ", workflow.Steps.Select(s => s.Name))})");

    /// <summary>The workflow with the candidate's image in place of the step's.</summary>
    public Workflow Apply(Workflow workflow)
    {
        StepOf(workflow);
        return workflow with { Steps = workflow.Steps.Select(s => s.Name == Step ? s with { Image = Image } : s).ToList() };
    }

    internal static CanaryRequestException Invalid(string message) => new(message);
}

/// <summary>How many of a run's tasks a canary takes: a share (<c>5%</c>) or a number (<c>3</c>), always at least one.</summary>
public sealed record CanarySample(double? Percent, int? Count)
{
    public static CanarySample Parse(string text)
    {
        var s = text.Trim();
        if (s.EndsWith('%'))
        {
            if (!double.TryParse(s[..^1], NumberStyles.Float, CultureInfo.InvariantCulture, out var p) || !double.IsFinite(p))
            {
                throw CanaryRequest.Invalid($"--sample '{text}' is not a share: write a percentage such as 5% or a number of tasks such as 3");
            }

            if (p <= 0 || p > 100)
            {
                throw CanaryRequest.Invalid($"--sample {text} must be more than 0% and at most 100% of the run's tasks");
            }

            return new CanarySample(p, null);
        }

        if (!int.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out var n))
        {
            throw CanaryRequest.Invalid($"--sample '{text}' is neither a percentage (5%) nor a number of tasks (3)");
        }

        if (n < 1)
        {
            throw CanaryRequest.Invalid($"--sample {text} must be at least 1 task");
        }

        return new CanarySample(null, n);
    }

    public override string ToString() => Percent is { } p ? p.ToString(CultureInfo.InvariantCulture) + "%" : Count!.Value.ToString(CultureInfo.InvariantCulture);
}

/// <summary>A canary request that cannot be carried out as written: a user's mistake, never worth a retry.</summary>
public sealed class CanaryRequestException(string message) : PipelinesException(message, retryHelps: false);
