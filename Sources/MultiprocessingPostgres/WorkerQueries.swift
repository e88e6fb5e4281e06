import Multiprocessing
import PostgresNIO

/// A task as a worker claimed it.
struct ClaimedTask: Sendable {
    var id: Int64
    var name: String
    var function: [UInt8]
    var input: [UInt8]
    var attempt: Int32
    var priority: Int32
    var timeout: Duration?
    var queue: String = "default"
    /// The producer's trace context, stored with the task (``ClusterTracing``).
    var trace: [String: String]? = nil
}

/// How one attempt ended, ready to be recorded.
struct AttemptOutcome: Sendable {
    var id: Int64
    var attempt: Int32
    /// The encoded output, or `nil` for a failure (a chunk's items' outcomes, with or without
    /// ``error``).
    var output: [UInt8]?
    var error: ErrorEnvelope?
    var errorText: String
    /// No further attempt can help (the payload does not decode).
    var final: Bool
}

/// The statements a worker runs. Each is one round trip and safe to repeat after a lost
/// connection (``ClusterDatabase/retrying(_:_:)``).
struct WorkerQueries: Sendable {
    let db: ClusterDatabase
    let workerID: String
    var s: String { db.schema }

    /// Claims up to `limit` due tasks of the given queues and names, highest priority first:
    /// `FOR UPDATE SKIP LOCKED`, so concurrent claimers never take the same row; each claim is a
    /// new attempt with a fresh lease.
    ///
    /// The claim commits asynchronously (`synchronous_commit = off` for its transaction alone):
    /// it does not wait for its WAL flush, the slowest part of a commit. What a server crash can
    /// lose is the claim itself, for at most a few hundred milliseconds of commits: the row is
    /// then `queued` again at its earlier attempt, so the task runs again (at-least-once), and
    /// the outcome of the run that started meanwhile is fenced off by the completion's check of
    /// state, worker and attempt (or, when this worker claims it again at the same attempt,
    /// recorded once). A completion commits synchronously, and its flush covers every earlier
    /// claim in the WAL.
    ///
    /// With one queue the condition is `queue = (queues)[1]`, so that the scan of `tasks_ready`
    /// comes out in claim order and stops after `limit` rows; `queue = ANY(queues)` makes
    /// PostgreSQL read and sort every queued row of those queues first, which made each claim of
    /// a large map cost as much as the whole backlog.
    func claim(limit: Int, queues: [String], names: [String], lease: Duration) async throws -> [ClaimedTask] {
        if queues.count == 1 {
            var claimed: [ClaimedTask] = []
            for try await row in try await db.client.execute(
                WorkerStatements.ClaimFromOneQueue(
                    workerID: workerID, leaseMilliseconds: Int64(lease.milliseconds), queue: queues[0],
                    names: names, limit: Int64(limit)),
                logger: db.logger)
            {
                claimed.append(Self.claimedTask(row))
            }
            return Self.inClaimOrder(claimed)
        }
        return try await decodeClaims(
            db.client.query(
                """
                \(unescaped: ClusterSchema.quietAsyncCTE)
                UPDATE \(unescaped: s).tasks t SET state = 'running', attempt = t.attempt + 1,
                    worker_id = \(workerID), lease_expires_at = now() + \(lease.milliseconds) * interval '1 ms',
                    started_at = now()
                FROM (
                    SELECT id FROM \(unescaped: s).tasks
                    WHERE state = 'queued' AND queue = ANY(\(queues)) AND task_name = ANY(\(names))
                        AND run_after <= now()
                    ORDER BY priority DESC, id
                    LIMIT \(limit) FOR UPDATE SKIP LOCKED
                ) picked, async
                WHERE t.id = picked.id
                RETURNING t.id, t.task_name, t.function, t.input, t.attempt, t.priority, t.timeout_ms, t.queue,
                    t.trace_context
                """, logger: db.logger))
    }

    /// Tasks this worker holds in the table but not in memory: a claim whose answer was lost
    /// with its connection.
    func orphans(known: [Int64]) async throws -> [ClaimedTask] {
        try await decodeClaims(
            db.client.query(
                """
                SELECT id, task_name, function, input, attempt, priority, timeout_ms, queue, trace_context
                FROM \(unescaped: s).tasks
                WHERE state = 'running' AND worker_id = \(workerID) AND NOT (id = ANY(\(known)))
                """, logger: db.logger))
    }

    private func decodeClaims(_ rows: PostgresRowSequence) async throws -> [ClaimedTask] {
        var claimed: [ClaimedTask] = []
        for try await row in rows.decode(WorkerStatements.ClaimRow.self) {
            claimed.append(Self.claimedTask(row))
        }
        return Self.inClaimOrder(claimed)
    }

    private static func claimedTask(_ row: WorkerStatements.ClaimRow) -> ClaimedTask {
        let (id, name, function, input, attempt, priority, timeout, queue, trace) = row
        return ClaimedTask(
            id: id, name: name, function: function.bytes, input: input.bytes, attempt: attempt,
            priority: priority, timeout: timeout.map { .milliseconds($0) }, queue: queue,
            // A context that does not decode costs the trace, not the task.
            trace: trace.flatMap { try? BinaryDecoder().decode([String: String].self, from: $0.bytes) })
    }

    private static func inClaimOrder(_ claimed: [ClaimedTask]) -> [ClaimedTask] {
        claimed.sorted { ($0.priority, -$0.id) > ($1.priority, -$1.id) }
    }

    /// Records outcomes, fenced: a row takes an outcome only while it is still running this
    /// attempt under this worker. Returns the ids that took theirs. A failed attempt goes back
    /// to the queue while attempts remain and the poison rule allows.
    func complete(_ outcomes: [AttemptOutcome], poisonLimit: Int) async throws -> Set<Int64> {
        let ids = outcomes.map(\.id)
        let attempts = outcomes.map(\.attempt)
        let succeeded = outcomes.map { $0.output != nil && $0.error == nil }
        let results = outcomes.map { ($0.output ?? []).buffer }
        let errors = outcomes.map { ($0.error?.bytes ?? []).buffer }
        let texts = outcomes.map(\.errorText)
        let killed = outcomes.map { $0.error?.killedWorker == true ? Int32(1) : 0 }
        let final = outcomes.map(\.final)
        var accepted = Set<Int64>()
        // Shaped for the plan: rows by primary key (`id = ANY`), hashed against the outcomes,
        // unnested once; the fence (attempt, worker, state) is part of the join, so that the
        // estimate of matching rows stays near the batch's size. With the worker and the state
        // as constants, PostgreSQL read every entry of `tasks_worker` for this worker, the dead
        // ones of every task it ever finished included, or, estimating one matching row,
        // rescanned the outcomes once per row: both grew with the square of the work.
        let rows = try await db.client.execute(
            WorkerStatements.Complete(
                workerID: workerID, ids: ids, attempts: attempts, succeeded: succeeded, results: results,
                errors: errors, texts: texts, killed: killed, final: final, poisonLimit: Int32(poisonLimit)),
            logger: db.logger)
        for try await id in rows { accepted.insert(id) }
        return accepted
    }

    /// Puts held tasks back in the queue without charging an attempt (a shutting-down worker
    /// gives back what it did not finish).
    func handBack(_ ids: [Int64]) async throws {
        guard !ids.isEmpty else { return }
        try await db.client.query(
            """
            UPDATE \(unescaped: s).tasks SET state = 'queued', attempt = attempt - 1, worker_id = NULL,
                lease_expires_at = NULL, started_at = NULL
            WHERE id = ANY(\(ids)) AND worker_id = \(workerID) AND state = 'running'
            """, logger: db.logger)
    }

    /// Renews the leases of held tasks and the worker's own heartbeat; returns the held ids
    /// that are no longer this worker's (cancelled, or rescued after a lost lease).
    func heartbeat(held: [Int64], lease: Duration, registration: WorkerRegistration) async throws -> Set<
        Int64
    > {
        try await register(registration)
        guard !held.isEmpty else { return [] }
        var renewed = Set<Int64>()
        for try await id in try await db.client.query(
            """
            \(unescaped: ClusterSchema.quietAsyncCTE)
            UPDATE \(unescaped: s).tasks SET lease_expires_at = now() + \(lease.milliseconds) * interval '1 ms'
            FROM async
            WHERE id = ANY(\(held)) AND state IS NOT DISTINCT FROM 'running'
                AND worker_id IS NOT DISTINCT FROM \(workerID)
            RETURNING id
            """, logger: db.logger
        ).decode(Int64.self) {
            renewed.insert(id)
        }
        return Set(held).subtracting(renewed)
    }

    /// Inserts or refreshes the worker's row.
    func register(_ registration: WorkerRegistration) async throws {
        try await db.client.query(
            """
            INSERT INTO \(unescaped: s).workers (id, host, pid, concurrency, queues, task_names, lease_ms, stopping)
            VALUES (\(workerID), \(registration.host), \(registration.pid), \(registration.concurrency),
                \(registration.queues), \(registration.names), \(registration.lease.milliseconds),
                \(registration.stopping))
            ON CONFLICT (id) DO UPDATE SET heartbeat_at = now(), stopping = excluded.stopping
            """, logger: db.logger)
    }

    /// Removes the worker's row.
    func deregister() async throws {
        try await db.client.query(
            "DELETE FROM \(unescaped: s).workers WHERE id = \(workerID)", logger: db.logger)
    }
}

/// What a worker says about itself in the `workers` table.
struct WorkerRegistration: Sendable {
    var host: String
    var pid: Int32
    var concurrency: Int32
    var queues: [String]
    var names: [String]
    var lease: Duration
    var stopping: Bool
}

/// The statements any party may run to keep the queue healthy.
struct MaintenanceQueries: Sendable {
    let db: ClusterDatabase
    var s: String { db.schema }

    /// Returns tasks whose lease expired to the queue, or fails them when no attempt is left;
    /// returns the queue of each task rescued.
    @discardableResult
    func rescueExpiredLeases() async throws -> [String] {
        var queues: [String] = []
        for try await queue in try await db.client.query(
            """
            UPDATE \(unescaped: s).tasks SET
                state = CASE WHEN attempt >= max_attempts THEN 'failed' ELSE 'queued' END,
                error = CASE WHEN attempt >= max_attempts THEN NULL ELSE error END,
                error_kind = CASE WHEN attempt >= max_attempts THEN 'lease_expired' ELSE error_kind END,
                error_text = CASE WHEN attempt >= max_attempts
                    THEN 'its worker stopped renewing its lease' ELSE error_text END,
                finished_at = CASE WHEN attempt >= max_attempts THEN now() END,
                worker_id = NULL, lease_expires_at = NULL, result = NULL
            WHERE state = 'running' AND lease_expires_at < now()
            RETURNING queue
            """, logger: db.logger
        ).decode(String.self) {
            queues.append(queue)
        }
        return queues
    }

    /// Fails due tasks that have waited past their time-out for a live worker that registered
    /// their name and serves their queue.
    @discardableResult
    func failUnknownNames() async throws -> Int {
        var count = 0
        for try await _ in try await db.client.query(
            """
            UPDATE \(unescaped: s).tasks t SET state = 'failed', error = NULL, error_kind = 'unknown_task_name',
                error_text = 'no live worker registered task name ' || t.task_name, finished_at = now()
            WHERE t.state = 'queued'
                AND t.run_after + t.unknown_name_timeout_ms * interval '1 ms' < now()
                AND NOT EXISTS (
                    SELECT 1 FROM \(unescaped: s).workers w
                    WHERE w.heartbeat_at > now() - 2 * w.lease_ms * interval '1 ms'
                        AND t.task_name = ANY(w.task_names) AND t.queue = ANY(w.queues))
            RETURNING t.id
            """, logger: db.logger
        ).decode(Int64.self) {
            count += 1
        }
        return count
    }

    /// Deletes the rows of workers silent for ten leases (at least a minute).
    func forgetDeadWorkers() async throws {
        try await db.client.query(
            """
            DELETE FROM \(unescaped: s).workers
            WHERE heartbeat_at < now() - greatest(10 * lease_ms, 60000) * interval '1 ms'
            """, logger: db.logger)
    }
}
