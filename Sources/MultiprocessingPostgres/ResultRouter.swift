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

    /// A notification of finished tasks: `f`, then their ids, each succeeded one with a small
    /// result followed by an element `=` and the result in hex (``ClusterSchema`` version 3).
    /// Returns the ids and the results it carried.
    static func parseFinished(_ payload: Substring) -> (ids: [Int64], results: [Int64: [UInt8]]) {
        var ids: [Int64] = []
        var results: [Int64: [UInt8]] = [:]
        for element in payload.split(separator: ",", omittingEmptySubsequences: false) {
            if element.first == "=" {
                if let id = ids.last, let bytes = hexBytes(element.dropFirst()) { results[id] = bytes }
            } else if let id = Int64(element) {
                ids.append(id)
            }
        }
        return (ids, results)
    }

    private static func hexBytes(_ hex: Substring) -> [UInt8]? {
        let digits = Array(hex.utf8)
        guard digits.count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(digits.count / 2)
        var index = 0
        while index < digits.count {
            guard let high = hexValue(digits[index]), let low = hexValue(digits[index + 1]) else {
                return nil
            }
            bytes.append(high << 4 | low)
            index += 2
        }
        return bytes
    }

    private static func hexValue(_ digit: UInt8) -> UInt8? {
        switch digit {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): digit - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): digit - UInt8(ascii: "a") + 10
        default: nil
        }
    }

    /// A notification named finished tasks; `results` are those it carried (succeeded, small):
    /// their waiters get them at once, the others' rows are read.
    func announced(_ ids: some Sequence<Int64>, results: [Int64: [UInt8]] = [:]) {
        var carried: [FinishedTask] = []
        let fetch = state.withLock { state -> Bool in
            var fetch = false
            for id in ids {
                if state.waiters[id] != nil {
                    if let result = results[id] {
                        carried.append(FinishedTask(succeeded: id, result: result))
                    } else {
                        state.toFetch.insert(id)
                        fetch = true
                    }
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
        if !carried.isEmpty { deliver(carried) }
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
                let (ids, results) = Self.parseFinished(payload.dropFirst())
                self.announced(ids, results: results)
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
