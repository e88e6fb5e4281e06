import PostgresNIO

/// The queue's tables, and the migrations that create and upgrade them.
///
/// Every party (producer, worker, admin) migrates on start. Migrations run in one transaction
/// that first takes a transaction-scoped advisory lock on the schema's name, so concurrent
/// runners queue behind each other; each one then applies only the versions that
/// `schema_version` does not list yet. A migration is never edited once released: changes are
/// new versions.
enum ClusterSchema {
    /// The latest version this library knows.
    static var latestVersion: Int { migrations.count }

    /// States in which a task is finished.
    static let finishedStates = "('succeeded','failed','cancelled')"

    /// Version `n` is `migrations[n - 1]`: its statements, in order (one per query, since the
    /// extended protocol takes one statement at a time). `{S}` stands for the schema, `{CH}` for
    /// the notification channel.
    static let migrations: [[String]] = [
        [
            """
            CREATE TABLE {S}.tasks (
                id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                queue text NOT NULL,
                task_name text NOT NULL,
                function bytea NOT NULL,
                input bytea NOT NULL,
                priority integer NOT NULL DEFAULT 0,
                state text NOT NULL DEFAULT 'queued'
                    CHECK (state IN ('queued','running','succeeded','failed','cancelled')),
                run_after timestamptz NOT NULL DEFAULT now(),
                dedup_key text,
                max_attempts integer NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
                attempt integer NOT NULL DEFAULT 0,
                workers_killed integer NOT NULL DEFAULT 0,
                timeout_ms bigint,
                unknown_name_timeout_ms bigint NOT NULL DEFAULT 300000,
                worker_id text,
                lease_expires_at timestamptz,
                result bytea,
                error bytea,
                error_text text,
                error_kind text,
                batch_id bigint NOT NULL,
                batch_index integer NOT NULL,
                created_at timestamptz NOT NULL DEFAULT now(),
                started_at timestamptz,
                finished_at timestamptz
            )
            """,
            "CREATE UNIQUE INDEX tasks_batch ON {S}.tasks (batch_id, batch_index)",
            """
            CREATE UNIQUE INDEX tasks_dedup ON {S}.tasks (queue, dedup_key)
                WHERE dedup_key IS NOT NULL AND state IN ('queued','running')
            """,
            "CREATE INDEX tasks_ready ON {S}.tasks (queue, priority DESC, id) WHERE state = 'queued'",
            "CREATE INDEX tasks_leases ON {S}.tasks (lease_expires_at) WHERE state = 'running'",
            "CREATE INDEX tasks_worker ON {S}.tasks (worker_id) WHERE state = 'running'",
            """
            CREATE INDEX tasks_finished ON {S}.tasks (queue, finished_at)
                WHERE state IN ('succeeded','failed','cancelled')
            """,
            """
            CREATE TABLE {S}.workers (
                id text PRIMARY KEY,
                host text NOT NULL,
                pid integer NOT NULL,
                concurrency integer NOT NULL,
                queues text[] NOT NULL,
                task_names text[] NOT NULL,
                started_at timestamptz NOT NULL DEFAULT now(),
                heartbeat_at timestamptz NOT NULL DEFAULT now(),
                lease_ms bigint NOT NULL,
                stopping boolean NOT NULL DEFAULT false
            )
            """,
            // Wake-ups. Finished tasks: 'f' and up to 300 ids per notification (a payload holds
            // at most 8000 bytes). Work that became ready: 'q' and the queue names. One statement
            // sends a few notifications, not one per row.
            """
            CREATE FUNCTION {S}.tasks_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                PERFORM pg_notify('{CH}', 'q' || string_agg(DISTINCT queue, ','))
                FROM new_rows WHERE state = 'queued' HAVING count(*) > 0;
                RETURN NULL;
            END $$
            """,
            """
            CREATE TRIGGER tasks_inserted AFTER INSERT ON {S}.tasks
                REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION {S}.tasks_inserted()
            """,
            """
            CREATE FUNCTION {S}.tasks_updated() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                PERFORM pg_notify('{CH}', 'f' || string_agg(id::text, ','))
                FROM (
                    SELECT n.id, (row_number() OVER (ORDER BY n.id) - 1) / 300 AS chunk
                    FROM new_rows n JOIN old_rows o ON o.id = n.id
                    WHERE n.state IN ('succeeded','failed','cancelled') AND o.state <> n.state
                ) finished
                GROUP BY chunk;
                PERFORM pg_notify('{CH}', 'q' || string_agg(DISTINCT n.queue, ','))
                FROM new_rows n JOIN old_rows o ON o.id = n.id
                WHERE n.state = 'queued' AND o.state <> 'queued'
                HAVING count(*) > 0;
                RETURN NULL;
            END $$
            """,
            """
            CREATE TRIGGER tasks_updated AFTER UPDATE ON {S}.tasks
                REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
                FOR EACH STATEMENT EXECUTE FUNCTION {S}.tasks_updated()
            """,
        ],
        // 2: the producer's trace context (swift-distributed-tracing), stored with each task.
        ["ALTER TABLE {S}.tasks ADD COLUMN trace_context bytea"],
        // 3: a small result travels in the notification that announces its task, so that a
        // producer need not read it back: after the id of a succeeded task whose result takes
        // at most 64 bytes comes an element '=' and the result in hex ("f12,=0a,13"). A reader
        // of version 2 skips those elements (they are not ids). Notifications are cut by length
        // (at most about 7,700 characters of the 8,000 a payload may hold), not by count.
        // `enable_nestloop = off` for the function: the transition tables have no statistics,
        // so PostgreSQL joined old and new rows in a nested loop, quadratic in the rows a
        // statement updated (40 ms for a batch of 226 outcomes).
        [updateTrigger(quietCheck: "")],
        // 4: statements that neither finish nor re-queue a task (claims, lease renewals) set
        // `multiprocessing.quiet` for their transaction, and the update trigger returns at once
        // for them: its two queries over the transition tables were most of a claim's execution
        // time (0.16-0.24 ms of ~0.3 ms, EXPLAIN ANALYZE). A writer that does not set it (an
        // older worker, an operator's UPDATE) gets the notifications as before.
        [
            updateTrigger(
                quietCheck:
                    "IF current_setting('multiprocessing.quiet', true) = 'on' THEN RETURN NULL; END IF;\n")
        ],
    ]

    /// The first part of a claim's or a lease renewal's statement: a CTE (to join) that makes
    /// its transaction commit asynchronously and keeps the update trigger quiet (version 4).
    static let quietAsyncCTE = """
        WITH async AS MATERIALIZED (
            SELECT set_config('synchronous_commit', 'off', true) AS commit_mode,
                set_config('multiprocessing.quiet', 'on', true) AS quiet
        )
        """

    /// The update trigger's function of versions 3 and 4 (4 adds `quietCheck` at its start):
    /// notifications for tasks that finished ('f', small results inline) and for tasks queued
    /// again ('q').
    private static func updateTrigger(quietCheck: String) -> String {
        """
        CREATE OR REPLACE FUNCTION {S}.tasks_updated() RETURNS trigger LANGUAGE plpgsql
        SET enable_nestloop = off AS $$
        BEGIN
        \(quietCheck)    PERFORM pg_notify('{CH}', 'f' || string_agg(entry, ',' ORDER BY id))
            FROM (
                SELECT id, entry, sum(length(entry) + 1) OVER (ORDER BY id) / 7500 AS chunk
                FROM (
                    SELECT n.id, n.id::text || CASE
                        WHEN n.state = 'succeeded' AND octet_length(n.result) <= 64
                        THEN ',=' || encode(n.result, 'hex') ELSE '' END AS entry
                    FROM new_rows n JOIN old_rows o ON o.id = n.id
                    WHERE n.state IN ('succeeded','failed','cancelled') AND o.state <> n.state
                ) entries
            ) finished
            GROUP BY chunk;
            PERFORM pg_notify('{CH}', 'q' || string_agg(DISTINCT n.queue, ','))
            FROM new_rows n JOIN old_rows o ON o.id = n.id
            WHERE n.state = 'queued' AND o.state <> 'queued'
            HAVING count(*) > 0;
            RETURN NULL;
        END $$
        """
    }

    /// Creates or upgrades the schema to ``latestVersion``.
    static func migrate(_ client: PostgresClient, configuration: ClusterConfiguration) async throws {
        let schema = configuration.schema
        let logger = Logger(label: "multiprocessing.postgres.migrate")
        try await client.withTransaction(logger: logger) { connection in
            // One lock per schema name; 0x6d70 ("mp") keeps it apart from other users' locks.
            try await connection.query(
                "SELECT pg_advisory_xact_lock(\(Int32(0x6d70)), hashtext(\(schema)))", logger: logger)
            try await connection.query("CREATE SCHEMA IF NOT EXISTS \(unescaped: schema)", logger: logger)
            try await connection.query(
                """
                CREATE TABLE IF NOT EXISTS \(unescaped: schema).schema_version (
                    version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())
                """, logger: logger)
            var current = 0
            for try await version in try await connection.query(
                "SELECT coalesce(max(version), 0) FROM \(unescaped: schema).schema_version", logger: logger
            ).decode(Int.self) {
                current = version
            }
            guard current <= latestVersion else {
                throw ClusterError.schemaTooNew(found: current, known: latestVersion)
            }
            for version in (current + 1)..<(latestVersion + 1) {
                for statement in migrations[version - 1] {
                    let sql = statement.replacing("{S}", with: schema).replacing(
                        "{CH}", with: configuration.channel)
                    try await connection.query(PostgresQuery(unsafeSQL: sql), logger: logger)
                }
                try await connection.query(
                    "INSERT INTO \(unescaped: schema).schema_version (version) VALUES (\(version))",
                    logger: logger)
            }
        }
    }
}
