using System.Globalization;
using System.Text.RegularExpressions;

namespace Pipelines.Model;

/// <summary>Sizes (<c>512Mi</c>, <c>2G</c>) and durations (<c>10m</c>, <c>1h30m</c>) as users write them.</summary>
public static partial class Quantities
{
    public static bool TryParseSize(string text, out long bytes)
    {
        bytes = 0;
        var m = SizePattern().Match(text.Trim());
        if (!m.Success)
        {
            return false;
        }

        var number = double.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture);
        double factor = m.Groups[2].Value switch
        {
            "" or "B" => 1,
            "k" or "K" or "KB" => 1e3,
            "M" or "MB" => 1e6,
            "G" or "GB" => 1e9,
            "T" or "TB" => 1e12,
            "Ki" or "KiB" => 1024,
            "Mi" or "MiB" => 1024 * 1024,
            "Gi" or "GiB" => 1024.0 * 1024 * 1024,
            "Ti" or "TiB" => 1024.0 * 1024 * 1024 * 1024,
            _ => -1,
        };
        if (factor < 0)
        {
            return false;
        }

        var value = number * factor;
        if (value > long.MaxValue)
        {
            return false;
        }

        bytes = (long)value;
        return true;
    }

    public static bool TryParseDuration(string text, out TimeSpan duration)
    {
        duration = TimeSpan.Zero;
        var trimmed = text.Trim();
        if (trimmed.Length == 0)
        {
            return false;
        }

        var total = TimeSpan.Zero;
        var position = 0;
        foreach (Match part in DurationPart().Matches(trimmed))
        {
            if (part.Index != position)
            {
                return false;
            }

            position = part.Index + part.Length;
            var n = double.Parse(part.Groups[1].Value, CultureInfo.InvariantCulture);
            try
            {
                total += part.Groups[2].Value switch
                {
                    "ms" => TimeSpan.FromMilliseconds(n),
                    "s" => TimeSpan.FromSeconds(n),
                    "m" => TimeSpan.FromMinutes(n),
                    "h" => TimeSpan.FromHours(n),
                    _ => TimeSpan.FromDays(n),
                };
            }
            catch (OverflowException)
            {
                // e.g. 99999999999d: more than TimeSpan holds is not a duration a user meant.
                return false;
            }
        }

        if (position != trimmed.Length)
        {
            return false;
        }

        duration = total;
        return true;
    }

    public static string FormatDuration(TimeSpan d) =>
        d.TotalSeconds < 1 ? $"{d.TotalMilliseconds:0}ms"
        : d.TotalMinutes < 1 ? $"{d.TotalSeconds:0.0}s"
        : d.TotalHours < 1 ? $"{(int)d.TotalMinutes}m{d.Seconds:00}s"
        : $"{(int)d.TotalHours}h{d.Minutes:00}m";

    /// <summary>
    /// A byte count the way a user writes one (512Mi, 10Gi, 300 bytes) when that is exact; a
    /// rounded one carries its bytes too (64Ki (65,537 bytes)), so that two sizes that differ
    /// never read the same, as a body one byte over a 64Ki limit once did.
    /// </summary>
    public static string FormatSize(long bytes)
    {
        string[] units = ["Ki", "Mi", "Gi", "Ti"];
        if (bytes < 1024)
        {
            return FormatBytes(bytes);
        }

        double value = bytes;
        var unit = -1;
        while (value >= 1024 && unit < units.Length - 1)
        {
            value /= 1024;
            unit++;
        }

        // Exact when the text, read back, is the same count of bytes.
        var text = string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{value:0.#}{units[unit]}");
        var shown = Math.Round(value, 1, MidpointRounding.AwayFromZero) * Math.Pow(1024, unit + 1);
        return shown == bytes ? text : $"{text} ({FormatBytes(bytes)})";
    }

    /// <summary>An exact byte count: 1 byte, 65,537 bytes.</summary>
    public static string FormatBytes(long bytes) =>
        bytes == 1 ? "1 byte" : bytes.ToString("N0", System.Globalization.CultureInfo.InvariantCulture) + " bytes";

    [GeneratedRegex(@"^(\d+(?:\.\d+)?)\s*([A-Za-z]*)$")]
    private static partial Regex SizePattern();

    [GeneratedRegex(@"(\d+(?:\.\d+)?)(ms|s|m|h|d)")]
    private static partial Regex DurationPart();
}
