namespace Pipelines.Tests.Support;

/// <summary>
/// The project's tables as older engines made them, frozen here (as <see cref="OlderProvenanceRow"/>
/// freezes an old row) so that a test can make them, fill them and watch a start of this engine
/// upgrade them in place: the DDL is copied from the engine at that version and never edited.
/// </summary>
public static class OlderSchema
{
    /// <summary>
    /// A database as an older build left it: the schema, its parts' table, and one part's
    /// <paramref name="tables"/> (one of the versions below) recorded at <paramref name="version"/>.
    /// </summary>
    public static string WithPart(string s, string part, int version, string tables) => $"""
        CREATE SCHEMA {s};
        CREATE TABLE {s}.schema_parts (part text PRIMARY KEY, version int NOT NULL, updated_at timestamptz NOT NULL DEFAULT now());
        {tables}
        INSERT INTO {s}.schema_parts (part, version) VALUES ('{part}', {version});
        """;

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

    /// <summary>The trigger store at version 1 (names unique across the schema, before tenants), as PostgresTriggerStore.Tables wrote it.</summary>
    public static string TriggerStoreV1(string s) => $"""
        CREATE TABLE IF NOT EXISTS {s}.workflows (
            name text PRIMARY KEY,
            yaml text NOT NULL,
            source text NOT NULL,
            base_dir text,
            overrides jsonb NOT NULL,
            trigger_uri text NOT NULL,
            bucket text NOT NULL,
            prefix text NOT NULL,
            include jsonb NOT NULL,
            exclude jsonb NOT NULL,
            settle_ms bigint NOT NULL,
            registered_at timestamptz NOT NULL,
            updated_at timestamptz NOT NULL);
        CREATE TABLE IF NOT EXISTS {s}.trigger_objects (
            workflow text NOT NULL REFERENCES {s}.workflows ON DELETE CASCADE,
            bucket text NOT NULL,
            key text NOT NULL,
            etag text NOT NULL,
            size bigint NOT NULL,
            state text NOT NULL,
            source text NOT NULL,
            seen_at timestamptz NOT NULL,
            run_id text,
            note text,
            PRIMARY KEY (workflow, bucket, key, etag));
        CREATE INDEX IF NOT EXISTS trigger_objects_pending ON {s}.trigger_objects (workflow, seen_at) WHERE state = 'pending';
        CREATE INDEX IF NOT EXISTS trigger_objects_run ON {s}.trigger_objects (run_id) WHERE run_id IS NOT NULL;
        CREATE TABLE IF NOT EXISTS {s}.trigger_batches (
            run_id text PRIMARY KEY,
            workflow text NOT NULL REFERENCES {s}.workflows ON DELETE CASCADE,
            state text NOT NULL,
            objects int NOT NULL,
            claimed_at timestamptz NOT NULL,
            started_at timestamptz,
            error text);
        CREATE TABLE IF NOT EXISTS {s}.trigger_state (
            workflow text PRIMARY KEY REFERENCES {s}.workflows ON DELETE CASCADE,
            baseline_done boolean NOT NULL DEFAULT false,
            start_after text,
            last_full_at timestamptz,
            last_full_listed bigint,
            last_poll_at timestamptz,
            last_poll_mode text,
            last_poll_listed bigint,
            last_error text,
            last_error_at timestamptz);
        """;

    /// <summary>The function store at version 2 (names unique across the schema, before tenants), as PostgresFunctionStore.SchemaSql wrote it.</summary>
    public static string FunctionStoreV2(string schema) => $"""
        CREATE SCHEMA IF NOT EXISTS {schema};
        CREATE TABLE IF NOT EXISTS {schema}.functions (
            name text PRIMARY KEY,
            current_version int NOT NULL,
            created_at timestamptz NOT NULL,
            updated_at timestamptz NOT NULL);
        CREATE TABLE IF NOT EXISTS {schema}.function_versions (
            name text NOT NULL REFERENCES {schema}.functions ON DELETE CASCADE,
            version int NOT NULL,
            spec jsonb NOT NULL,
            image_digest text NOT NULL,
            yaml text NOT NULL,
            content_sha256 text NOT NULL,
            deployed_at timestamptz NOT NULL,
            deployed_by text NOT NULL,
            PRIMARY KEY (name, version));
        CREATE TABLE IF NOT EXISTS {schema}.function_invocations (
            id text PRIMARY KEY,
            function text NOT NULL REFERENCES {schema}.functions ON DELETE CASCADE,
            version int NOT NULL,
            image_digest text NOT NULL,
            status text NOT NULL,
            async boolean NOT NULL,
            input_sha256 text,
            input_bytes bigint NOT NULL,
            output_sha256 text,
            output_bytes bigint,
            output_name text,
            content_type text,
            http_status int,
            latency_ms double precision,
            container_id text,
            started_at timestamptz NOT NULL,
            finished_at timestamptz,
            error text,
            caller text);
        CREATE INDEX IF NOT EXISTS function_invocations_started ON {schema}.function_invocations (started_at);
        CREATE INDEX IF NOT EXISTS function_invocations_function ON {schema}.function_invocations (function, version, started_at);
        ALTER TABLE {schema}.function_invocations ADD COLUMN IF NOT EXISTS algorithm_version text;
        ALTER TABLE {schema}.function_invocations ADD COLUMN IF NOT EXISTS route text;
        ALTER TABLE {schema}.function_invocations ADD COLUMN IF NOT EXISTS shadow_of text;
        ALTER TABLE {schema}.function_invocations ADD COLUMN IF NOT EXISTS shadow_equal boolean;
        ALTER TABLE {schema}.function_invocations ADD COLUMN IF NOT EXISTS cold_start boolean;
        """;

    /// <summary>The algorithm catalog at version 2 (names unique across the schema, before tenants), as PostgresAlgorithmStore.Tables wrote it.</summary>
    public static string AlgorithmCatalogV2(string s) => $"""
        CREATE TABLE IF NOT EXISTS {s}.algorithm_versions (
            name text NOT NULL,
            version text NOT NULL,
            digest text NOT NULL,
            size_bytes bigint NOT NULL,
            pushed_by text NOT NULL,
            pushed_at timestamptz NOT NULL,
            notes text,
            repo_tags jsonb NOT NULL,
            lock_down jsonb NOT NULL,
            PRIMARY KEY (name, version));
        CREATE INDEX IF NOT EXISTS algorithm_versions_digest ON {s}.algorithm_versions (digest);
        CREATE TABLE IF NOT EXISTS {s}.algorithm_channels (
            name text NOT NULL,
            channel text NOT NULL,
            version text NOT NULL,
            percent int NOT NULL DEFAULT 100,
            updated_at timestamptz NOT NULL,
            updated_by text NOT NULL,
            PRIMARY KEY (name, channel),
            FOREIGN KEY (name, version) REFERENCES {s}.algorithm_versions (name, version));
        CREATE TABLE IF NOT EXISTS {s}.image_loads (
            id bigserial PRIMARY KEY,
            digest text NOT NULL,
            worker text NOT NULL,
            source text NOT NULL,
            seconds double precision NOT NULL,
            bytes bigint NOT NULL,
            loaded_at timestamptz NOT NULL);
        CREATE INDEX IF NOT EXISTS image_loads_digest ON {s}.image_loads (digest, loaded_at);
        ALTER TABLE {s}.algorithm_channels ADD COLUMN IF NOT EXISTS shadow boolean NOT NULL DEFAULT false;
        CREATE TABLE IF NOT EXISTS {s}.algorithm_events (
            id bigserial PRIMARY KEY,
            name text NOT NULL,
            action text NOT NULL,
            version text,
            percent int,
            by_whom text NOT NULL,
            reason text,
            at timestamptz NOT NULL);
        CREATE INDEX IF NOT EXISTS algorithm_events_name ON {s}.algorithm_events (name, at);
        """;
}
