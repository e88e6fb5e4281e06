import PostgresNIO
import Synchronization

/// A producer's waiting results: who waits for which task, which finished tasks to read, and
/// the loops that learn about them (`LISTEN` for finished ids, polling as the fallback) and
/// read them in batches.
final class ResultRouter: Sendable {
    typealias Delivery = @Sendable (FinishedTask) -> Void

    private struct State {
        var waiters: [Int64: [Int: Delivery]] = [:]
        var nextKey = 0
        /// Finished ids announced before anyone here waited for them (a result can be announced
        /// before the insert that created its task has returned): the newest few thousand.
        var recent = Set<Int64>()
        var recentOrder: [Int64] = []
        var toFetch = Set<Int64>()
        var sweep = false
    }

    private let state = Mutex(State())
    let wake = Wakeup()
    static let recentLimit = 50_000

    init() {}

    /// Waits for `ids`; `deliver` gets each one's row once it is finished. Returns a key per id
    /// for ``forget(_:)``.
    @discardableResult
    func wait(for ids: [Int64], fetchNow: Bool = false, _ deliver: @escaping Delivery) -> [(Int64, Int)] {
        let (keys, fetch) = state.withLock { state -> ([(Int64, Int)], Bool) in
            var keys: [(Int64, Int)] = []
            var fetch = false
            for id in ids {
                state.nextKey += 1
                state.waiters[id, default: [:]][state.nextKey] = deliver
                keys.append((id, state.nextKey))
                if fetchNow || state.recent.contains(id) {
                    state.toFetch.insert(id)
                    fetch = true
                }
            }
            return (keys, fetch)
        }
        if fetch { wake.signal() }
        return keys
    }

    /// Stops waiting (the waiter gave up).
    func forget(_ keys: [(Int64, Int)]) {
        state.withLock { state in
            for (id, key) in keys {
                state.waiters[id]?[key] = nil
                if state.waiters[id]?.isEmpty == true { state.waiters[id] = nil }
            }
        }
    }

    var pendingCount: Int { state.withLock { $0.waiters.count } }

    /// A notification named finished tasks.
    func announced(_ ids: some Sequence<Int64>) {
        let fetch = state.withLock { state -> Bool in
            var fetch = false
            for id in ids {
                if state.waiters[id] != nil {
                    state.toFetch.insert(id)
                    fetch = true
                } else if state.recent.insert(id).inserted {
                    state.recentOrder.append(id)
                }
            }
            if state.recentOrder.count > Self.recentLimit {
                let drop = state.recentOrder.count - Self.recentLimit / 2
                for id in state.recentOrder.prefix(drop) { state.recent.remove(id) }
                state.recentOrder.removeFirst(drop)
            }
            return fetch
        }
        if fetch { wake.signal() }
    }

    /// Notifications may have been missed (a reconnect): look at every waiting task.
    func requestSweep() {
        state.withLock { $0.sweep = true }
        wake.signal()
    }

    /// The ids to read now: those announced, or every waiting one on a sweep.
    func takeToFetch(sweep forced: Bool) -> [Int64] {
        state.withLock { state in
            if forced || state.sweep {
                state.sweep = false
                state.toFetch = []
                return Array(state.waiters.keys)
            }
            defer { state.toFetch = [] }
            return Array(state.toFetch)
        }
    }

    /// Hands finished rows to their waiters.
    func deliver(_ rows: [FinishedTask]) {
        let calls = state.withLock { state -> [(Delivery, FinishedTask)] in
            var calls: [(Delivery, FinishedTask)] = []
            for row in rows {
                guard let waiters = state.waiters.removeValue(forKey: row.id) else { continue }
                for deliver in waiters.values { calls.append((deliver, row)) }
            }
            return calls
        }
        for (deliver, row) in calls { deliver(row) }
    }

    // MARK: Loops

    /// `LISTEN`s for finished tasks (``ClusterListener``); each (re)connection and each lost
    /// session asks for a sweep, since notifications sent meanwhile are lost.
    func listen(_ db: ClusterDatabase) async {
        await ClusterListener.run(
            db, listening: { self.requestSweep() }, lost: { self.requestSweep() },
            handle: { payload in
                guard payload.first == "f" else { return }
                self.announced(payload.dropFirst().split(separator: ",").compactMap { Int64($0) })
            })
    }

    /// Reads finished tasks as they are announced, and every waiting one when nothing was
    /// announced for a poll interval; fails waiting tasks that no worker can run.
    func fetch(_ db: ClusterDatabase) async {
        let maintenance = MaintenanceQueries(db: db)
        var lastNameCheck = ContinuousClock.now
        while !Task.isCancelled {
            let signalled = await wake.wait(upTo: db.configuration.pollInterval)
            if Task.isCancelled { return }
            let ids = takeToFetch(sweep: !signalled)
            if !signalled, pendingCount > 0, ContinuousClock.now - lastNameCheck > .seconds(5) {
                lastNameCheck = .now
                _ = try? await maintenance.failUnknownNames()
            }
            var start = 0
            while start < ids.count {
                let chunk = Array(ids[start..<min(start + 5000, ids.count)])
                start += chunk.count
                do {
                    let rows = try await db.retrying("reading results") {
                        try await FinishedTask.read(
                            db.client.query(
                                """
                                SELECT \(unescaped: FinishedTask.columns) FROM \(unescaped: db.schema).tasks
                                WHERE id = ANY(\(chunk)) AND state IN \(unescaped: ClusterSchema.finishedStates)
                                """, logger: db.logger))
                    }
                    deliver(rows)
                } catch {
                    requestSweep()
                }
            }
        }
    }
}
