import Multiprocessing

/// The result of a task submitted to a ``ClusterPool``, or looked up by id: the cluster's
/// `PoolFuture`.
///
/// Await ``value``, await it with a time-out, check ``isDone``, or ``cancel()`` the task. The
/// task and its result live in the database, not in this object: a future dropped, or a
/// producer gone, loses nothing (``ClusterPool/result(of:as:)`` finds it again).
public final class ClusterFuture<Output: Codable & Sendable>: Sendable {
    /// The task's id on the queue.
    public let id: ClusterTaskID
    let gate = Gate<Output>()
    let pool: ClusterPool

    init(id: ClusterTaskID, pool: ClusterPool) {
        self.id = id
        self.pool = pool
    }

    /// Starts waiting for the row (the pool calls it once).
    func attach(fetchNow: Bool) {
        pool.router.wait(for: [id.rawValue], fetchNow: fetchNow) { [gate] row in
            gate.open(row.outcome(as: Output.self))
        }
    }

    /// `true` once the result (or an error) is in.
    public var isDone: Bool { gate.result != nil }

    /// The result if it is in, without waiting.
    public var result: Result<Output, any Error>? { gate.result }

    /// Waits for the result. Cancelling the awaiting task cancels the task on the queue.
    public var value: Output {
        get async throws {
            if let result = gate.result { return try result.get() }
            do {
                return try await withTaskCancellationHandler {
                    try await gate.value()
                } onCancel: {
                    cancel()
                }
            } catch is CancellationError {
                throw PoolError.cancelled
            }
        }
    }

    /// Waits at most `timeout`; throws `PoolError.resultTimedOut` if the
    /// result is not in by then (the task goes on: ``cancel()`` it to stop it).
    public func value(timeout: Duration) async throws -> Output {
        if let result = gate.result { return try result.get() }
        let gate = self.gate
        let arrived = await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                _ = try? await gate.value()
                return true
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return false
            }
            let first = await group.next() ?? false
            group.cancelAll()
            return first
        }
        guard arrived, let result = gate.result else {
            if Task.isCancelled { throw PoolError.cancelled }
            throw PoolError.resultTimedOut
        }
        return try result.get()
    }

    /// Cancels the task: a queued task never runs, a running one is stopped by its worker. The
    /// result becomes `PoolError.cancelled` unless it was already in. Returns
    /// at once; the cancellation is written in the background (``ClusterPool/cancel(_:)``
    /// writes it and waits).
    public func cancel() {
        guard !isDone else { return }
        let pool = self.pool
        let id = self.id
        Task { _ = try? await pool.cancel([id]) }
    }
}
