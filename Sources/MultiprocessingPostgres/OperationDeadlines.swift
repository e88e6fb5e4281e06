import Synchronization

/// The time limits of the database operations in flight (``ClusterDatabase/bounded(by:_:_:)``),
/// watched by one task for the whole process: a timer task per statement cost two more jobs on
/// the cooperative pool (its start, and its wake-up when cancelled) on every round trip. The
/// watcher wakes at most once a second while operations are in flight (so a limit may pass up to
/// a second late) and stops when none is.
final class OperationDeadlines: Sendable {
    static let shared = OperationDeadlines()

    private struct Pending {
        var deadline: ContinuousClock.Instant
        var expire: @Sendable () -> Void
    }

    private struct State {
        var nextKey: UInt64 = 0
        var pending: [UInt64: Pending] = [:]
        var watching = false
    }

    private let state = Mutex(State())

    /// Calls `expire` once `deadline` has passed, unless ``remove(_:)`` came first.
    func add(deadline: ContinuousClock.Instant, expire: @escaping @Sendable () -> Void) -> UInt64 {
        let (key, startWatcher) = state.withLock { state -> (UInt64, Bool) in
            state.nextKey += 1
            state.pending[state.nextKey] = Pending(deadline: deadline, expire: expire)
            defer { state.watching = true }
            return (state.nextKey, !state.watching)
        }
        if startWatcher { Task.detached { await self.watch() } }
        return key
    }

    /// Forgets an operation that ended in time.
    func remove(_ key: UInt64) {
        state.withLock { _ = $0.pending.removeValue(forKey: key) }
    }

    /// Whether the watcher runs (it stops once no operation is in flight).
    var isWatching: Bool { state.withLock { $0.watching } }

    private func watch() async {
        while true {
            let now = ContinuousClock.now
            let (expired, earliest) = state.withLock { state -> ([Pending], ContinuousClock.Instant?) in
                let expired = state.pending.filter { $0.value.deadline <= now }
                for key in expired.keys { state.pending[key] = nil }
                guard let earliest = state.pending.values.map(\.deadline).min() else {
                    state.watching = false
                    return (Array(expired.values), nil)
                }
                return (Array(expired.values), earliest)
            }
            for operation in expired { operation.expire() }
            guard let earliest else { return }
            try? await Task.sleep(until: min(earliest, now + .seconds(1)), clock: .continuous)
        }
    }
}
