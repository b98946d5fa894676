namespace Pipelines.Tests.Support;

/// <summary>
/// The project's tables as older engines made them, frozen here (as <see cref="OlderProvenanceRow"/>
/// freezes an old row) so that a test can make them, fill them and watch a start of this engine
/// upgrade them in place: the DDL is copied from the engine at that version and never edited.
/// </summary>
public static class OlderSchema
{
    /// <summary>The run store at version 2 (runs, tasks, provenance, before tenants), as PostgresRunStore.Tables wrote it.</summary>
    public static string RunStoreV2(string s) => $"""
        CREATE TABLE IF NOT EXISTS {s}.runs (
            run_id text PRIMARY KEY,
            workflow_name text NOT NULL,
            workflow_yaml text NOT NULL,
            definition jsonb NOT NULL,
            output_uri text NOT NULL,
            state text NOT NULL,
            task_count int NOT NULL,
            remaining int NOT NULL,
            created_at timestamptz NOT NULL,
            finished_at timestamptz,
            stop_reason text,
            gather_job text,
            error text);
        CREATE TABLE IF NOT EXISTS {s}.tasks (
            run_id text NOT NULL REFERENCES {s}.runs ON DELETE CASCADE,
            task_index int NOT NULL,
            task_id text NOT NULL,
            state text NOT NULL,
            inputs jsonb NOT NULL,
            captures jsonb NOT NULL,
            attempts int NOT NULL DEFAULT 0,
            exit_code bigint,
            error text,
            worker text,
            started_at timestamptz,
            finished_at timestamptz,
            PRIMARY KEY (run_id, task_index));
        CREATE TABLE IF NOT EXISTS {s}.provenance (
            run_id text NOT NULL REFERENCES {s}.runs ON DELETE CASCADE,
            task_index int NOT NULL,
            attempt int NOT NULL,
            step text NOT NULL,
            row jsonb NOT NULL,
            PRIMARY KEY (run_id, task_index, attempt, step));
        CREATE INDEX IF NOT EXISTS runs_created ON {s}.runs (created_at DESC);
        ALTER TABLE {s}.tasks ADD COLUMN IF NOT EXISTS parent_index int;
        ALTER TABLE {s}.tasks ADD COLUMN IF NOT EXISTS lease_until timestamptz;
        ALTER TABLE {s}.provenance ADD COLUMN IF NOT EXISTS step_rank int;
        ALTER TABLE {s}.tasks ADD COLUMN IF NOT EXISTS held_reason text;
        ALTER TABLE {s}.tasks ADD COLUMN IF NOT EXISTS held_detail text;
        ALTER TABLE {s}.tasks ADD COLUMN IF NOT EXISTS held_by text;
        ALTER TABLE {s}.tasks ADD COLUMN IF NOT EXISTS held_at timestamptz;
        """;
}
