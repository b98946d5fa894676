using Npgsql;
using Pipelines.Hosting;
using Pipelines.RunStore;
using Pipelines.Tenancy;
using Pipelines.Tests.Support;
using Pipelines.Triggers;

namespace Pipelines.Tests.RunStore;

/// <summary>
/// The one owner of the project's tables against the real PostgreSQL: many processes starting at
/// once on a fresh database, a store used before its tables exist, and tables older than the code.
/// </summary>
[Integration]
public sealed class PostgresSchemaTests : IAsyncLifetime
{
    private const int Starters = 8;
    private static readonly CancellationToken None = CancellationToken.None;
    private static readonly DateTimeOffset Now = new(2026, 12, 1, 12, 0, 0, TimeSpan.Zero);

    private readonly string _database = TestEnvironment.NewName("schema_");
    private readonly string _schema = TestEnvironment.NewName("own_");
    private NpgsqlDataSource _admin = null!;
    private string _fresh = null!;

    public async Task InitializeAsync()
    {
        _admin = await TestEnvironment.PostgresAsync();
        await using (var create = _admin.CreateCommand($"CREATE DATABASE {_database}"))
        {
            await create.ExecuteNonQueryAsync();
        }

        _fresh = new NpgsqlConnectionStringBuilder(TestEnvironment.Postgres) { Database = _database }.ConnectionString;
    }

    public async Task DisposeAsync()
    {
        // FORCE ends what a failed test left connected; every data source of the tests is disposed.
        await using (var drop = _admin.CreateCommand($"DROP DATABASE IF EXISTS {_database} WITH (FORCE)"))
        {
            await drop.ExecuteNonQueryAsync();
        }

        await _admin.DisposeAsync();
    }

    [Fact]
    public async Task Set_up_by_many_processes_at_once_on_a_fresh_database_makes_every_part_once()
    {
        // A data source each, as separate processes have: no shared pool orders them.
        var sources = Enumerable.Range(0, Starters).Select(_ => NpgsqlDataSource.Create(_fresh)).ToList();
        try
        {
            using var go = new ManualResetEventSlim();
            var starts = sources.Select(db => Task.Run(async () =>
            {
                go.Wait();
                await new PostgresSchema(db, _schema).CreateAsync(None);
            })).ToList();

            // Hangfire's installer takes the same lock: set up beside ours, the two never interleave.
            starts.Add(Task.Run(() =>
            {
                go.Wait();
                HangfireSchema.Install(sources[0], _schema + "_hangfire");
            }));
            go.Set();
            await Task.WhenAll(starts);

            Assert.Equal(PostgresSchema.Parts.Select(p => (p.Name, p.Version)).Order(), await VersionsAsync(sources[0]));
            Assert.Equal(
                ["algorithm_channels", "algorithm_events", "algorithm_versions", "data_protection_keys", "function_invocations", "function_versions", "functions", "image_loads", "provenance", "runs", "schema_parts", "tasks", "tenant_buckets", "tenant_holders", "tenant_processes", "trigger_batches", "trigger_objects", "trigger_state", "workflows"],
                await TablesAsync(sources[0], _schema));
            Assert.Contains("job", await TablesAsync(sources[0], _schema + "_hangfire"));

            // The stores work on what was made, and a later start keeps their rows.
            var runs = new PostgresRunStore(sources[1], _schema);
            await runs.CreateRunAsync(Run("r1"), [OneTask("r1")], None);
            await Task.WhenAll(sources.Select(db => new PostgresSchema(db, _schema).CreateAsync(None)));
            Assert.Equal(1, (await runs.GetRunAsync("r1", None))!.TaskCount);
            Assert.Empty(await new PostgresTriggerStore(sources[2], _schema).ListAsync(None));
            Assert.Equal(PostgresSchema.Parts.Count, (await VersionsAsync(sources[0])).Count);
        }
        finally
        {
            foreach (var db in sources)
            {
                await db.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task A_store_used_before_its_tables_exist_says_what_to_do_and_works_once_they_do()
    {
        await using var db = NpgsqlDataSource.Create(_fresh);
        var runs = new PostgresRunStore(db, _schema);
        var triggers = new PostgresTriggerStore(db, _schema);

        var noRuns = await Assert.ThrowsAsync<PipelinesException>(() => runs.GetRunAsync("r1", None));
        var noTriggers = await Assert.ThrowsAsync<PipelinesException>(() => triggers.ListAsync(None));

        Assert.Equal(
            $"PostgreSQL schema '{_schema}' has no tables of the run store: a pipelines worker, server or run creates and upgrades them when it starts "
            + "(PostgresSchema.CreateAsync); start one against this database, with the same Schema setting",
            noRuns.Message);
        Assert.StartsWith($"PostgreSQL schema '{_schema}' has no tables of the trigger store: ", noTriggers.Message, StringComparison.Ordinal);
        Assert.False(noRuns.RetryHelps);

        await new PostgresSchema(db, _schema).CreateAsync(None);

        Assert.Null(await runs.GetRunAsync("r1", None));
        Assert.Empty(await triggers.ListAsync(None));
    }

    [Fact]
    public async Task A_store_refuses_tables_older_than_its_code_until_a_start_upgrades_them()
    {
        await using var db = NpgsqlDataSource.Create(_fresh);
        await new PostgresSchema(db, _schema).CreateAsync(None);
        await using (var old = db.CreateCommand($"UPDATE {_schema}.schema_parts SET version = 0 WHERE part = 'run store'"))
        {
            await old.ExecuteNonQueryAsync();
        }

        var e = await Assert.ThrowsAsync<PipelinesException>(() => new PostgresRunStore(db, _schema).GetRunAsync("r1", None));
        Assert.StartsWith($"PostgreSQL schema '{_schema}' has the run store's tables at version 0, older than this engine's {PostgresRunStore.Tables.Version}: ", e.Message, StringComparison.Ordinal);

        await new PostgresSchema(db, _schema).CreateAsync(None);

        Assert.Null(await new PostgresRunStore(db, _schema).GetRunAsync("r1", None));
    }

    [Fact]
    public async Task Tables_of_the_previous_versions_with_rows_are_upgraded_to_the_default_tenant_and_keep_their_keys()
    {
        await using var db = NpgsqlDataSource.Create(_fresh);
        await using (var older = db.CreateCommand($"""
            {OlderSchema.WithPart(_schema, "run store", 2, OlderSchema.RunStoreV2(_schema))}
            INSERT INTO {_schema}.runs (run_id, workflow_name, workflow_yaml, definition, output_uri, state, task_count, remaining, created_at)
                VALUES ('old-run', 'wf', 'version: 1', '{"{}"}', 's3://out/old-run/', 'running', 2, 1, '2026-11-01T00:00:00Z');
            INSERT INTO {_schema}.tasks (run_id, task_index, task_id, state, inputs, captures, attempts)
                VALUES ('old-run', 0, 'id0000', 'succeeded', '[]', '{"{}"}', 1), ('old-run', 1, 'id0001', 'queued', '[]', '{"{}"}', 0);
            INSERT INTO {_schema}.provenance (run_id, task_index, attempt, step, step_rank, row)
                VALUES ('old-run', 0, 1, 'stats', 0, @row);
            """))
        {
            older.Parameters.AddWithValue("row", NpgsqlTypes.NpgsqlDbType.Jsonb, System.Text.Json.JsonSerializer.Serialize(new ProvenanceRow { TaskId = "id0000", TaskIndex = 0, Attempt = 1, Step = "stats", Status = "succeeded" }));
            await older.ExecuteNonQueryAsync();
        }

        await new PostgresSchema(db, _schema).CreateAsync(None);
        await new PostgresSchema(db, _schema).CreateAsync(None);

        IRunStore store = new PostgresRunStore(db, _schema);
        var run = await store.GetRunAsync("old-run", None);
        Assert.NotNull(run);
        Assert.Equal((TenantId.Default, (string?)null, 2, 1), (run.Tenant, run.SubmittedBy, run.TaskCount, run.Remaining));
        Assert.Equal([TaskState.Succeeded, TaskState.Queued], (await store.GetTasksAsync("old-run", None)).Select(t => t.State));
        Assert.Single(await store.GetProvenanceAsync("old-run", None));
        Assert.Null(await store.For(TenantScope.Of(TenantId.Parse("lab-a", "test"))).GetRunAsync("old-run", None));
        Assert.Contains(("run store", PostgresRunStore.Tables.Version), await VersionsAsync(db));

        // The old rows keep their keys: the claim and commit of the queued task work as on a run made today.
        Assert.Equal(0, await store.ClaimTaskAsync("old-run", 1, "w", Now, Now.AddMinutes(1), None));
        Assert.Equal((true, 0), await store.CommitTaskAsync("old-run", 1, new TaskOutcome(TaskState.Succeeded, 0, null, Now), [], None));
        await Assert.ThrowsAsync<DuplicateRunException>(() => store.CreateRunAsync(Run("old-run"), [OneTask("old-run")], None));
        await using var tenants = db.CreateCommand($"SELECT DISTINCT tenant FROM {_schema}.tasks");
        Assert.Equal("default", await tenants.ExecuteScalarAsync());
    }

    [Fact]
    public async Task Trigger_tables_of_the_previous_version_with_rows_become_the_default_tenants_and_take_keys_with_the_tenant()
    {
        await using var db = NpgsqlDataSource.Create(_fresh);
        await using (var older = db.CreateCommand($"""
            {OlderSchema.WithPart(_schema, "trigger store", 1, OlderSchema.TriggerStoreV1(_schema))}
            INSERT INTO {_schema}.workflows (name, yaml, source, base_dir, overrides, trigger_uri, bucket, prefix, include, exclude, settle_ms, registered_at, updated_at)
                VALUES ('wf', 'version: 1', 'wf.yaml', NULL, '[]', 's3://b/in/', 'b', 'in/', '["**/*.fastq"]', '[]', 30000, '2026-11-01T00:00:00Z', '2026-11-01T00:00:00Z');
            INSERT INTO {_schema}.trigger_objects (workflow, bucket, key, etag, size, state, source, seen_at, run_id)
                VALUES ('wf', 'b', 'in/a.fastq', 'e1', 1, 'claimed', 'watch', '2026-11-01T00:00:00Z', 'old-run'),
                       ('wf', 'b', 'in/b.fastq', 'e2', 1, 'pending', 'watch', '2026-11-01T00:00:00Z', NULL);
            INSERT INTO {_schema}.trigger_batches (run_id, workflow, state, objects, claimed_at) VALUES ('old-run', 'wf', 'claimed', 1, '2026-11-01T00:00:00Z');
            INSERT INTO {_schema}.trigger_state (workflow, baseline_done, start_after) VALUES ('wf', true, 'in/b.fastq');
            """))
        {
            await older.ExecuteNonQueryAsync();
        }

        await new PostgresSchema(db, _schema).CreateAsync(None);
        await new PostgresSchema(db, _schema).CreateAsync(None);

        ITriggerStore store = new PostgresTriggerStore(db, _schema);
        var labA = store.For(TenantScope.Of(TenantId.Parse("lab-a", "test")));
        Assert.Equal((TenantId.Default, "s3://b/in/"), ((await store.GetAsync("wf", None))!.Tenant, (await store.GetAsync("wf", None))!.Uri));
        Assert.True(await store.IsBaselineDoneAsync("wf", None));
        Assert.Equal(1, (await store.PendingAsync("wf", None)).Count);
        Assert.Equal(["old-run"], (await store.OpenBatchesAsync("wf", None)).Select(b => b.RunId));
        Assert.Null(await labA.GetAsync("wf", None));
        Assert.Empty(await labA.BatchObjectsAsync("old-run", None));
        Assert.Contains(("trigger store", PostgresTriggerStore.Tables.Version), await VersionsAsync(db));

        // The keys hold the tenant: an old version seen again is still recorded once, lab-a may take the name,
        // and a removal still takes the default tenant's ledger, batches and checkpoint with it (the references moved too).
        Assert.Equal(0, await store.RecordAsync("wf", "b", [(new LedgerObject("in/b.fastq", 1, "e2"), LedgerState.Pending, null)], "watch", Now, None));
        Assert.True(await labA.UpsertAsync(new RegisteredTrigger("wf", "version: 1", "wf.yaml", null, [], "s3://a/in/", "a", "in/", ["**"], [], TimeSpan.Zero, Now), Now, None));
        Assert.Equal(1, await labA.RecordAsync("wf", "b", [(new LedgerObject("in/b.fastq", 1, "e2"), LedgerState.Pending, null)], "watch", Now, None));
        Assert.True(await store.RemoveAsync("wf", None));
        await using (var left = db.CreateCommand($"SELECT (SELECT count(*) FROM {_schema}.trigger_objects WHERE tenant = 'default') + (SELECT count(*) FROM {_schema}.trigger_batches) + (SELECT count(*) FROM {_schema}.trigger_state WHERE tenant = 'default')"))
        {
            Assert.Equal(0L, await left.ExecuteScalarAsync());
        }

        Assert.Equal(1, (await labA.PendingAsync("wf", None)).Count);
        Assert.Equal(["tenant, name"], await PrimaryKeysAsync(db, "workflows"));
    }

    [Fact]
    public async Task Function_tables_of_the_previous_version_with_rows_become_the_default_tenants_and_take_keys_with_the_tenant()
    {
        await using var db = NpgsqlDataSource.Create(_fresh);
        await using (var older = db.CreateCommand($"""
            {OlderSchema.WithPart(_schema, "function store", 2, OlderSchema.FunctionStoreV2(_schema))}
            INSERT INTO {_schema}.functions (name, current_version, created_at, updated_at) VALUES ('echo', 1, '2026-11-01T00:00:00Z', '2026-11-01T00:00:00Z');
            INSERT INTO {_schema}.function_versions (name, version, spec, image_digest, yaml, content_sha256, deployed_at, deployed_by)
                VALUES ('echo', 1, @spec, 'sha256:old', 'yaml', 'content-1', '2026-11-01T00:00:00Z', 'op');
            INSERT INTO {_schema}.function_invocations (id, function, version, image_digest, status, async, input_bytes, started_at)
                VALUES ('inv-old', 'echo', 1, 'sha256:old', 'succeeded', false, 7, '2026-11-01T00:00:00Z');
            """))
        {
            older.Parameters.AddWithValue("spec", NpgsqlTypes.NpgsqlDbType.Jsonb, Pipelines.Functions.FunctionParser.Parse("name: echo\nimage: busybox:1\ncommand: [cat, \"{input}\"]\n", "f.yaml").ToJson());
            await older.ExecuteNonQueryAsync();
        }

        await new PostgresSchema(db, _schema).CreateAsync(None);
        await new PostgresSchema(db, _schema).CreateAsync(None);

        Pipelines.Functions.IFunctionStore store = new Pipelines.Functions.PostgresFunctionStore(db, _schema);
        var labA = store.For(TenantScope.Of(TenantId.Parse("lab-a", "test")));
        var echo = await store.GetAsync("echo", null, None);
        Assert.Equal((TenantId.Default, 1, "sha256:old", "function:echo@1"), (echo!.Tenant, echo.Version, echo.ImageDigest, echo.Owner));
        Assert.Equal(TenantId.Default, (await store.GetInvocationAsync("inv-old", None))!.Tenant);
        Assert.Null(await labA.GetAsync("echo", null, None));
        Assert.Null(await labA.GetInvocationAsync("inv-old", None));
        Assert.Contains(("function store", Pipelines.Functions.PostgresFunctionStore.Tables.Version), await VersionsAsync(db));

        // The keys hold the tenant: the default tenant's next deploy is version 2, lab-a's first is 1, and a
        // delete still takes the default tenant's versions and invocations with it (the references moved too).
        var spec = Pipelines.Functions.FunctionParser.Parse("name: echo\nimage: busybox:1\ncommand: [cat, \"{input}\"]\n", "f.yaml");
        Assert.Equal(2, (await store.DeployAsync(spec, "y", "sha256:new", "content-2", "op", Now, None)).Function.Version);
        Assert.Equal(1, (await labA.DeployAsync(spec, "y", "sha256:a", "content-a", "alice", Now, None)).Function.Version);
        Assert.Equal([2, 1], await store.DeleteAsync("echo", None));
        Assert.Null(await store.GetInvocationAsync("inv-old", None));
        Assert.NotNull(await labA.GetAsync("echo", 1, None));
        Assert.Equal(["tenant, name, version"], await PrimaryKeysAsync(db, "function_versions"));
    }

    [Fact]
    public async Task Algorithm_tables_of_the_previous_version_with_rows_become_the_default_tenants_and_take_keys_with_the_tenant()
    {
        await using var db = NpgsqlDataSource.Create(_fresh);
        await using (var older = db.CreateCommand($"""
            {OlderSchema.WithPart(_schema, "algorithm catalog", 2, OlderSchema.AlgorithmCatalogV2(_schema))}
            INSERT INTO {_schema}.algorithm_versions (name, version, digest, size_bytes, pushed_by, pushed_at, notes, repo_tags, lock_down)
                VALUES ('ocr', '1.0', 'sha256:old', 10, 'op', '2026-11-01T00:00:00Z', NULL, '[]', '[]'),
                       ('ocr', '2.0', 'sha256:two', 10, 'op', '2026-11-02T00:00:00Z', NULL, '[]', '[]');
            INSERT INTO {_schema}.algorithm_channels (name, channel, version, percent, updated_at, updated_by) VALUES ('ocr', 'stable', '1.0', 100, '2026-11-01T00:00:00Z', 'op');
            INSERT INTO {_schema}.algorithm_events (name, action, version, percent, by_whom, at) VALUES ('ocr', 'promote', '1.0', 100, 'op', '2026-11-01T00:00:00Z');
            INSERT INTO {_schema}.image_loads (digest, worker, source, seconds, bytes, loaded_at) VALUES ('sha256:old', 'w1', 's3://x', 1, 10, '2026-11-01T00:00:00Z');
            """))
        {
            await older.ExecuteNonQueryAsync();
        }

        await new PostgresSchema(db, _schema).CreateAsync(None);
        await new PostgresSchema(db, _schema).CreateAsync(None);

        Pipelines.Algorithms.IAlgorithmStore store = new Pipelines.Algorithms.PostgresAlgorithmStore(db, _schema);
        var labA = store.For(TenantScope.Of(TenantId.Parse("lab-a", "test")));
        Assert.Equal((TenantId.Default, "sha256:old"), ((await store.GetAsync("ocr", "1.0", None))!.Tenant, (await store.RouteAsync("ocr", None))!.Stable.Digest));
        Assert.Equal([TenantId.Default], (await store.EventsAsync("ocr", 10, None)).Select(e => e.Tenant));
        Assert.Equal([TenantId.Default], (await store.LoadsAsync(null, 10, None)).Select(l => l.Tenant));
        Assert.Null(await labA.RouteAsync("ocr", None));
        Assert.Empty(await labA.LoadsAsync(null, 10, None));
        Assert.Contains(("algorithm catalog", Pipelines.Algorithms.PostgresAlgorithmStore.Tables.Version), await VersionsAsync(db));

        // The keys hold the tenant: lab-a may push ocr 1.0 too, a channel still needs its version (the reference
        // moved with the keys), and a version a channel names is still refused.
        Assert.True(await labA.AddAsync(new Pipelines.Algorithms.AlgorithmVersion("ocr", "1.0", "sha256:a", 1, "alice", Now, null, [], []), _ => Task.CompletedTask, None));
        await Assert.ThrowsAsync<PipelinesException>(() => labA.SetChannelAsync("ocr", "canary", "2.0", 10, false, "alice", Now, null, null, None));
        Assert.True(await store.SetChannelAsync("ocr", "canary", "2.0", 10, false, "op", Now, null, null, None));
        await Assert.ThrowsAsync<PipelinesException>(() => store.DeleteAsync("ocr", "1.0", (_, _) => Task.CompletedTask, None));
        Assert.Equal(["tenant, name, channel"], await PrimaryKeysAsync(db, "algorithm_channels"));
    }

    /// <summary>A table's primary key, as its columns in order.</summary>
    private async Task<List<string>> PrimaryKeysAsync(NpgsqlDataSource db, string table)
    {
        await using var cmd = db.CreateCommand($"""
            SELECT string_agg(a.attname, ', ' ORDER BY k.ord) FROM pg_constraint c
            CROSS JOIN LATERAL unnest(c.conkey) WITH ORDINALITY AS k(attnum, ord)
            JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum
            WHERE c.conrelid = '{_schema}.{table}'::regclass AND c.contype = 'p' GROUP BY c.oid
            """);
        var list = new List<string>();
        await using var r = await cmd.ExecuteReaderAsync();
        while (await r.ReadAsync())
        {
            list.Add(r.GetString(0));
        }

        return list;
    }

    private async Task<List<(string, int)>> VersionsAsync(NpgsqlDataSource db)
    {
        await using var cmd = db.CreateCommand($"SELECT part, version FROM {_schema}.schema_parts ORDER BY part");
        var list = new List<(string, int)>();
        await using var r = await cmd.ExecuteReaderAsync();
        while (await r.ReadAsync())
        {
            list.Add((r.GetString(0), r.GetInt32(1)));
        }

        return list;
    }

    private static async Task<List<string>> TablesAsync(NpgsqlDataSource db, string schema)
    {
        await using var cmd = db.CreateCommand("SELECT table_name FROM information_schema.tables WHERE table_schema = @s ORDER BY table_name");
        cmd.Parameters.AddWithValue("s", schema);
        var list = new List<string>();
        await using var r = await cmd.ExecuteReaderAsync();
        while (await r.ReadAsync())
        {
            list.Add(r.GetString(0));
        }

        return list;
    }

    private static RunRecord Run(string id) => new(id, "wf", "version: 1", "{}", "/tmp/out/" + id + "/", RunState.Running, 0, 0, Now, null, null, null);

    private static TaskRecord OneTask(string runId) => new(runId, 0, "id0000", TaskState.Queued, [], new Dictionary<string, string>(), 0, null, null, null, null, null);
}
