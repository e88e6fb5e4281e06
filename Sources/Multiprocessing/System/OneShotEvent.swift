import Synchronization

/// Something that happens once (a child's exit, a result's arrival) and that any number of
/// tasks can wait for, each giving up when cancelled or after a time-out.
final class OneShotEvent: Sendable {
    private struct State {
        var fired = false
        var waiters: [UInt64: UnsafeContinuation<Void, Never>] = [:]
        var nextWaiter: UInt64 = 0
    }

    private let state = Mutex(State())

    init() {}

    var hasFired: Bool { state.withLock { $0.fired } }

    /// Marks the event as happened and wakes every waiter. Later calls do nothing.
    func fire() {
        let waiters = state.withLock { s -> [UnsafeContinuation<Void, Never>] in
            guard !s.fired else { return [] }
            s.fired = true
            defer { s.waiters.removeAll() }
            return Array(s.waiters.values)
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Returns once the event has happened, or early if the waiting task is cancelled.
    func wait() async {
        let id = state.withLock { s in
            defer { s.nextWaiter += 1 }
            return s.nextWaiter
        }
        await withTaskCancellationHandler {
            await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
                let done = state.withLock { s in
                    if s.fired { return true }
                    s.waiters[id] = continuation
                    return false
                }
                if done { continuation.resume() }
                if Task.isCancelled { release(id) }
            }
        } onCancel: {
            release(id)
        }
    }

    /// Like ``wait()``, giving up after `timeout`.
    func wait(timeout: Duration) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.wait() }
            group.addTask { try? await Task.sleep(for: timeout) }
            await group.next()
            group.cancelAll()
        }
    }

    private func release(_ id: UInt64) {
        state.withLock { $0.waiters.removeValue(forKey: id) }?.resume()
    }
}
