import PostgresNIO

/// The statements on every task's path (the producer's insert, a worker's claim and
/// completion), prepared once per connection: parsing and planning
/// them cost more than running them (a statement log of one `apply`: parse 0.2 + bind 0.46 +
/// execute 0.3 ms for a claim). Their text names tables without a schema: the connections of a
/// ``ClusterDatabase`` have the queue's schema as their `search_path`.
enum WorkerStatements {
    /// The columns a claim returns.
    typealias ClaimRow = (Int64, String, ByteBuffer, ByteBuffer, Int32, Int32, Int64?, String, ByteBuffer?)

    /// ``WorkerQueries/claim(limit:queues:names:lease:)`` for a worker that serves one queue.
    struct ClaimFromOneQueue: PostgresPreparedStatement {
        typealias Row = ClaimRow
        static let name = "multiprocessing_claim_one_queue_v2"
        static let sql = """
            \(ClusterSchema.quietAsyncCTE)
            UPDATE tasks t SET state = 'running', attempt = t.attempt + 1,
                worker_id = $1, lease_expires_at = now() + $2::bigint * interval '1 ms',
                started_at = now()
            FROM (
                SELECT id FROM tasks
                WHERE state = 'queued' AND queue = $3 AND task_name = ANY($4::text[])
                    AND run_after <= now()
                ORDER BY priority DESC, id
                LIMIT $5 FOR UPDATE SKIP LOCKED
            ) picked, async
            WHERE t.id = picked.id
            RETURNING t.id, t.task_name, t.function, t.input, t.attempt, t.priority, t.timeout_ms, t.queue,
                t.trace_context
            """

        var workerID: String
        var leaseMilliseconds: Int64
        var queue: String
        var names: [String]
        var limit: Int64

        func makeBindings() throws -> PostgresBindings {
            var bindings = PostgresBindings(capacity: 5)
            bindings.append(workerID)
            bindings.append(leaseMilliseconds)
            bindings.append(queue)
            bindings.append(names)
            bindings.append(limit)
            return bindings
        }

        func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
    }

    /// ``WorkerQueries/complete(_:poisonLimit:)``: outcomes recorded, fenced by attempt, worker
    /// and state.
    struct Complete: PostgresPreparedStatement {
        typealias Row = Int64
        static let name = "multiprocessing_complete_v3"
        static let sql = """
            WITH c AS MATERIALIZED (
                SELECT *, $1::text AS worker, 'running'::text AS running
                FROM unnest($2::bigint[], $3::integer[], $4::boolean[], $5::bytea[], $6::bytea[],
                    $7::text[], $8::integer[], $9::boolean[])
                    AS c(id, attempt, ok, result, error, error_text, killed, final)
            )
            UPDATE tasks t SET
                state = CASE
                    WHEN c.ok THEN 'succeeded'
                    WHEN c.final OR t.attempt >= t.max_attempts
                        OR t.workers_killed + c.killed >= $10::integer THEN 'failed'
                    ELSE 'queued' END,
                result = CASE
                    WHEN c.ok THEN c.result
                    WHEN (c.final OR t.attempt >= t.max_attempts OR t.workers_killed + c.killed >= $10::integer)
                        AND octet_length(c.result) > 0 THEN c.result END,
                error = CASE WHEN c.ok THEN NULL ELSE c.error END,
                error_text = CASE WHEN c.ok THEN NULL ELSE c.error_text END,
                error_kind = NULL,
                workers_killed = t.workers_killed + c.killed,
                worker_id = NULL, lease_expires_at = NULL,
                finished_at = CASE
                    WHEN c.ok OR c.final OR t.attempt >= t.max_attempts
                        OR t.workers_killed + c.killed >= $10::integer THEN now() END
            FROM c
            WHERE t.id = ANY($2::bigint[]) AND t.id = c.id AND t.attempt = c.attempt
                AND t.worker_id = c.worker AND t.state = c.running
            RETURNING t.id
            """

        var workerID: String
        var ids: [Int64]
        var attempts: [Int32]
        var succeeded: [Bool]
        var results: [ByteBuffer]
        var errors: [ByteBuffer]
        var texts: [String]
        var killed: [Int32]
        var final: [Bool]
        var poisonLimit: Int32

        func makeBindings() throws -> PostgresBindings {
            var bindings = PostgresBindings(capacity: 10)
            bindings.append(workerID)
            bindings.append(ids)
            bindings.append(attempts)
            bindings.append(succeeded)
            bindings.append(results)
            bindings.append(errors)
            bindings.append(texts)
            bindings.append(killed)
            bindings.append(final)
            bindings.append(poisonLimit)
            return bindings
        }

        func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Int64.self) }
    }

    /// ``ClusterPool``'s insert of a batch of tasks (one or thousands: the inputs are arrays).
    /// A row already stored by an earlier try of the same batch is skipped (`ON CONFLICT`).
    struct InsertTasks: PostgresPreparedStatement {
        typealias Row = (Int64, Int32)
        static let name = "multiprocessing_insert_tasks_v1"
        static let sql = """
            INSERT INTO tasks (queue, task_name, function, input, priority, run_after, dedup_key, max_attempts,
                timeout_ms, unknown_name_timeout_ms, batch_id, batch_index, trace_context)
            SELECT $1, $2, $3, i.input, $4, now() + $5::bigint * interval '1 ms', $6, $7, $8, $9, $10, i.index, $11
            FROM unnest($12::bytea[], $13::integer[]) AS i(input, index)
            ON CONFLICT DO NOTHING
            RETURNING id, batch_index
            """

        var queue: String
        var name: String
        var function: ByteBuffer
        var priority: Int32
        var delayMilliseconds: Int64
        var deduplicationKey: String?
        var maxAttempts: Int32
        var timeoutMilliseconds: Int64?
        var unknownNameTimeoutMilliseconds: Int64
        var batch: Int64
        var traceContext: ByteBuffer?
        var inputs: [ByteBuffer]
        var indices: [Int32]

        func makeBindings() throws -> PostgresBindings {
            var bindings = PostgresBindings(capacity: 13)
            bindings.append(queue)
            bindings.append(name)
            bindings.append(function)
            bindings.append(priority)
            bindings.append(delayMilliseconds)
            bindings.append(deduplicationKey)
            bindings.append(maxAttempts)
            bindings.append(timeoutMilliseconds)
            bindings.append(unknownNameTimeoutMilliseconds)
            bindings.append(batch)
            bindings.append(traceContext)
            bindings.append(inputs)
            bindings.append(indices)
            return bindings
        }

        func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
    }
}
