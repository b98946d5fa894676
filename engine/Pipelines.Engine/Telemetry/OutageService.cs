namespace Pipelines.Telemetry;

/// <summary>Which service an outage is of, for the outage metrics: s3, postgres, docker, or other.</summary>
internal static class OutageService
{
    /// <summary>
    /// Read from the exception and its causes: the engine's exceptions wrap the client library's
    /// (AWSSDK for S3, Npgsql, Docker.DotNet), and say which engine they could not reach.
    /// </summary>
    public static string Of(Exception e)
    {
        for (var x = (Exception?)e; x is not null; x = x.InnerException)
        {
            var ns = x.GetType().Namespace ?? "";
            if (x is Npgsql.NpgsqlException || ns.StartsWith("Npgsql", StringComparison.Ordinal))
            {
                return "postgres";
            }

            if (ns.StartsWith("Amazon", StringComparison.Ordinal))
            {
                return "s3";
            }

            if (ns.StartsWith("Docker.DotNet", StringComparison.Ordinal) || x.Message.Contains("Docker engine", StringComparison.Ordinal))
            {
                return "docker";
            }

            if (x.Message.Contains("S3", StringComparison.Ordinal))
            {
                return "s3";
            }
        }

        return "other";
    }
}
