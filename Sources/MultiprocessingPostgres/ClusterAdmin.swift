import Multiprocessing
import PostgresNIO
import ServiceLifecycle

/// The queue's figures and its operations, for programs and operators: counts per state and
/// queue, the oldest waiting task, live workers and what they hold, failed tasks with their
/// errors; retry, cancel, purge, and the cleanup of old finished tasks.
///
/// ```swift
/// try await withClusterAdmin(configuration: configuration) { admin in
///     for queue in try await admin.queues() { print(queue.name, queue.counts) }
///     try await admin.deleteFinished(olderThan: .seconds(7 * 86_400))
/// }
/// ```
public final class ClusterAdmin: Service, Sendable {
    /// The queue.
    public let configuration: ClusterConfiguration
    let db: ClusterDatabase
    let started = Gate<Void>()

    /// An admin on `configuration`'s queue; nothing connects before ``run()``.
    public init(configuration: ClusterConfiguration) {
        self.configuration = configuration
        db = ClusterDatabase(configuration: configuration, label: "admin")
    }

    /// Connects and creates or upgrades the schema, then keeps the connection pool until
    /// cancelled (or a graceful shutdown).
    public func run() async throws {
        let db = self.db
        let clientTask = db.startClient()
        defer { clientTask.cancel() }
        do {
            try await db.migrate()
            started.open(.success(()))
        } catch {
            started.open(.failure(error))
            throw error
        }
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled { try? await Task.sleep(for: .seconds(3600)) }
        }
    }

    private func ready() async throws { try await started.value() }

    private var s: String { db.schema }

    // MARK: Figures

    /// Every queue that has tasks, with counts per state, the oldest due waiting task's age and
    /// the tasks finished in the last minute.
    public func queues() async throws -> [ClusterQueueFigures] {
        try await ready()
        let db = self.db
        let s = self.s
        return try await db.retrying("reading queue figures") {
            var figures: [ClusterQueueFigures] = []
            for try await (name, queued, running, succeeded, failed, cancelled, oldest, lastMinute)
                in try await db.client
                .query(
                    """
                    SELECT queue,
                        count(*) FILTER (WHERE state = 'queued'),
                        count(*) FILTER (WHERE state = 'running'),
                        count(*) FILTER (WHERE state = 'succeeded'),
                        count(*) FILTER (WHERE state = 'failed'),
                        count(*) FILTER (WHERE state = 'cancelled'),
                        (extract(epoch FROM now() - min(run_after) FILTER (
                            WHERE state = 'queued' AND run_after <= now())) * 1000)::bigint,
                        count(*) FILTER (WHERE finished_at > now() - interval '1 minute')
                    FROM \(unescaped: s).tasks GROUP BY queue ORDER BY queue
                    """, logger: db.logger
                ).decode((String, Int, Int, Int, Int, Int, Int64?, Int).self)
            {
                figures.append(
                    ClusterQueueFigures(
                        name: name,
                        counts: [
                            .queued: queued, .running: running, .succeeded: succeeded, .failed: failed,
                            .cancelled: cancelled,
                        ],
                        oldestWaiting: oldest.map { .milliseconds($0) }, finishedLastMinute: lastMinute))
            }
            return figures
        }
    }

    /// The workers with a row: host, pid, concurrency, last heartbeat, tasks held.
    public func workers() async throws -> [ClusterWorkerFigures] {
        try await ready()
        let db = self.db
        let s = self.s
        return try await db.retrying("reading workers") {
            var figures: [ClusterWorkerFigures] = []
            for try await (id, host, pid, concurrency, queues, names, heartbeat, lease, stopping, held)
                in try await db
                .client.query(
                    """
                    SELECT w.id, w.host, w.pid, w.concurrency, w.queues, w.task_names,
                        (extract(epoch FROM now() - w.heartbeat_at) * 1000)::bigint, w.lease_ms, w.stopping,
                        (SELECT count(*) FROM \(unescaped: s).tasks t WHERE t.state = 'running' AND t.worker_id = w.id)
                    FROM \(unescaped: s).workers w ORDER BY w.host, w.pid
                    """, logger: db.logger
                ).decode((String, String, Int32, Int32, [String], [String], Int64, Int64, Bool, Int).self)
            {
                let sinceHeartbeat = Duration.milliseconds(heartbeat)
                figures.append(
                    ClusterWorkerFigures(
                        id: id, host: host, pid: pid, concurrency: Int(concurrency), queues: queues,
                        taskNames: names,
                        sinceHeartbeat: sinceHeartbeat, isLive: heartbeat < 2 * lease, isStopping: stopping,
                        tasksHeld: held))
            }
            return figures
        }
    }

    /// Failed tasks, newest first, with their last error.
    public func failedTasks(queue: String? = nil, limit: Int = 100) async throws -> [ClusterFailedTask] {
        try await ready()
        let db = self.db
        let s = self.s
        return try await db.retrying("reading failed tasks") {
            var rows: [ClusterFailedTask] = []
            for try await (id, name, queueName, attempts, text, age) in try await db.client.query(
                """
                SELECT id, task_name, queue, attempt, coalesce(error_text, ''),
                    (extract(epoch FROM now() - finished_at) * 1000)::bigint
                FROM \(unescaped: s).tasks
                WHERE state = 'failed' AND (\(queue)::text IS NULL OR queue = \(queue))
                ORDER BY finished_at DESC, id DESC LIMIT \(limit)
                """, logger: db.logger
            ).decode((Int64, String, String, Int32, String, Int64).self) {
                rows.append(
                    ClusterFailedTask(
                        id: ClusterTaskID(id), taskName: name, queue: queueName, attempts: Int(attempts),
                        error: text, age: .milliseconds(age)))
            }
            return rows
        }
    }

    /// A task's state, or `nil` when there is no such task.
    public func state(of id: ClusterTaskID) async throws -> ClusterTaskState? {
        try await ready()
        let db = self.db
        let s = self.s
        return try await db.retrying("reading a task") {
            var state: ClusterTaskState?
            for try await text in try await db.client.query(
                "SELECT state FROM \(unescaped: s).tasks WHERE id = \(id.rawValue)", logger: db.logger
            ).decode(String.self) {
                state = ClusterTaskState(rawValue: text)
            }
            return state
        }
    }

    // MARK: Operations

    /// Queues failed or cancelled tasks again with a fresh count of attempts. Returns how many.
    @discardableResult
    public func retry(_ ids: [ClusterTaskID]) async throws -> Int {
        try await ready()
        let db = self.db
        let s = self.s
        let raw = ids.map(\.rawValue)
        return try await db.retrying("retrying tasks") {
            try await Self.count(
                db.client.query(
                    """
                    UPDATE \(unescaped: s).tasks SET state = 'queued', attempt = 0, workers_killed = 0,
                        run_after = now(), error = NULL, error_kind = NULL, error_text = NULL, result = NULL,
                        finished_at = NULL, started_at = NULL
                    WHERE id = ANY(\(raw)) AND state IN ('failed','cancelled')
                    RETURNING id
                    """, logger: db.logger))
        }
    }

    /// Cancels queued or running tasks (a worker running one stops it). Returns how many.
    @discardableResult
    public func cancel(_ ids: [ClusterTaskID]) async throws -> Int {
        try await ready()
        return try await Self.cancel(ids.map(\.rawValue), db: db)
    }

    /// Deletes a queue's tasks in the given states (by default the finished ones). Returns how
    /// many.
    @discardableResult
    public func purge(queue: String, states: Set<ClusterTaskState> = ClusterTaskState.finished) async throws
        -> Int
    {
        try await ready()
        let db = self.db
        let s = self.s
        let names = states.map(\.rawValue)
        return try await db.retrying("purging") {
            try await Self.count(
                db.client.query(
                    """
                    DELETE FROM \(unescaped: s).tasks WHERE queue = \(queue) AND state = ANY(\(names)) RETURNING id
                    """, logger: db.logger))
        }
    }

    /// Retention: deletes tasks that finished more than `age` ago (all queues, or one). Returns
    /// how many.
    @discardableResult
    public func deleteFinished(olderThan age: Duration, queue: String? = nil) async throws -> Int {
        try await ready()
        let db = self.db
        let s = self.s
        return try await db.retrying("deleting finished tasks") {
            try await Self.count(
                db.client.query(
                    """
                    DELETE FROM \(unescaped: s).tasks
                    WHERE state IN \(unescaped: ClusterSchema.finishedStates)
                        AND finished_at < now() - \(age.milliseconds) * interval '1 ms'
                        AND (\(queue)::text IS NULL OR queue = \(queue))
                    RETURNING id
                    """, logger: db.logger))
        }
    }

    /// Returns expired leases to the queue now (workers do it every few seconds). Returns how
    /// many.
    @discardableResult
    public func rescueExpiredLeases() async throws -> Int {
        try await ready()
        let maintenance = MaintenanceQueries(db: db)
        return try await db.retrying("rescuing leases") { try await maintenance.rescueExpiredLeases() }.count
    }

    static func count(_ rows: PostgresRowSequence) async throws -> Int {
        var count = 0
        for try await _ in rows { count += 1 }
        return count
    }

    static func cancel(_ ids: [Int64], db: ClusterDatabase) async throws -> Int {
        guard !ids.isEmpty else { return 0 }
        return try await db.retrying("cancelling tasks") {
            try await count(
                db.client.query(
                    """
                    UPDATE \(unescaped: db.schema).tasks SET state = 'cancelled', error_kind = 'cancelled',
                        error_text = 'cancelled', finished_at = now(), worker_id = NULL, lease_expires_at = NULL
                    WHERE id = ANY(\(ids)) AND state IN ('queued','running')
                    RETURNING id
                    """, logger: db.logger))
        }
    }
}

/// Runs `body` with a running ``ClusterAdmin``, then stops it.
public func withClusterAdmin<Result>(
    configuration: ClusterConfiguration, isolation: isolated (any Actor)? = #isolation,
    _ body: (ClusterAdmin) async throws -> Result
) async throws -> Result {
    let admin = ClusterAdmin(configuration: configuration)
    return try await withThrowingTaskGroup(of: Void.self, returning: Result.self, isolation: isolation) {
        group in
        group.addTask { try await admin.run() }
        do {
            let result = try await body(admin)
            group.cancelAll()
            return result
        } catch {
            group.cancelAll()
            throw error
        }
    }
}

/// Where a task is in its life.
public enum ClusterTaskState: String, Sendable, Hashable, CaseIterable, Codable {
    /// Waiting for a worker (or for its run-after time).
    case queued
    /// Claimed by a worker, under a lease.
    case running
    /// Finished with a result.
    case succeeded
    /// Finished with an error, after its last attempt.
    case failed
    /// Cancelled before it finished.
    case cancelled

    /// The states of finished tasks.
    public static let finished: Set<ClusterTaskState> = [.succeeded, .failed, .cancelled]
}

/// One queue's figures.
public struct ClusterQueueFigures: Sendable, Hashable {
    /// The queue's name.
    public var name: String
    /// Tasks per state (every state present, zero included).
    public var counts: [ClusterTaskState: Int]
    /// How long the oldest due task has waited, if one waits.
    public var oldestWaiting: Duration?
    /// Tasks finished in the last minute: the queue's throughput.
    public var finishedLastMinute: Int
}

/// One worker's figures.
public struct ClusterWorkerFigures: Sendable, Hashable {
    /// Its id (host, pid and a random part).
    public var id: String
    /// Its host's name.
    public var host: String
    /// Its process id on that host.
    public var pid: Int32
    /// How many tasks it runs at once.
    public var concurrency: Int
    /// The queues it serves.
    public var queues: [String]
    /// The task names it registered.
    public var taskNames: [String]
    /// The time since its last heartbeat.
    public var sinceHeartbeat: Duration
    /// Whether it renewed its heartbeat within two leases.
    public var isLive: Bool
    /// Whether it is shutting down.
    public var isStopping: Bool
    /// Tasks it holds under a lease.
    public var tasksHeld: Int
}

/// A failed task and its last error.
public struct ClusterFailedTask: Sendable, Hashable {
    /// The task.
    public var id: ClusterTaskID
    /// Its task name.
    public var taskName: String
    /// Its queue.
    public var queue: String
    /// Attempts made.
    public var attempts: Int
    /// The last error's description.
    public var error: String
    /// The time since it failed.
    public var age: Duration
}
