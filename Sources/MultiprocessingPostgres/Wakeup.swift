import Synchronization

/// A sticky wake-up for one waiting loop: ``signal()`` ends the current or the next
/// ``wait(upTo:)``, and several signals before a wait count as one.
final class Wakeup: Sendable {
    private struct State {
        var signalled = false
        var waiter: CheckedContinuation<Void, Never>?
    }

    private let state = Mutex(State())

    init() {}

    /// Wakes the waiter, or the next one.
    func signal() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            if let waiter = state.waiter {
                state.waiter = nil
                return waiter
            }
            state.signalled = true
            return nil
        }
        waiter?.resume()
    }

    /// Returns when signalled, after `timeout`, or when the task is cancelled; `true` when
    /// signalled.
    @discardableResult
    func wait(upTo timeout: Duration) async -> Bool {
        if state.withLock({ state in
            defer { state.signalled = false }
            return state.signalled
        }) {
            return true
        }
        return await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                await self.waitForSignal()
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
    }

    private func waitForSignal() async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let resumeNow = state.withLock { state -> Bool in
                    if state.signalled || Task.isCancelled {
                        state.signalled = false
                        return true
                    }
                    state.waiter = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
                defer { state.waiter = nil }
                return state.waiter
            }
            waiter?.resume()
        }
    }
}

/// Opens once, with a value or an error; every waiter, before or after, gets it.
final class Gate<Value: Sendable>: Sendable {
    private struct State {
        var result: Result<Value, any Error>?
        var waiters: [Int: CheckedContinuation<Result<Value, any Error>, Never>] = [:]
        var nextKey = 0
    }

    private let state = Mutex(State())

    init() {}

    /// Opens the gate (only the first call counts).
    func open(_ result: Result<Value, any Error>) {
        let waiters = state.withLock { state -> [CheckedContinuation<Result<Value, any Error>, Never>] in
            guard state.result == nil else { return [] }
            state.result = result
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume(returning: result) }
    }

    /// The result, if the gate is open.
    var result: Result<Value, any Error>? { state.withLock { $0.result } }

    /// Waits until the gate opens; a cancelled wait throws `CancellationError`.
    func value() async throws -> Value {
        if let result { return try result.get() }
        let key = state.withLock { state -> Int in
            state.nextKey += 1
            return state.nextKey
        }
        let result = await withTaskCancellationHandler {
            await withCheckedContinuation {
                (continuation: CheckedContinuation<Result<Value, any Error>, Never>) in
                let ready = state.withLock { state -> Result<Value, any Error>? in
                    if let result = state.result { return result }
                    if Task.isCancelled { return .failure(CancellationError()) }
                    state.waiters[key] = continuation
                    return nil
                }
                if let ready { continuation.resume(returning: ready) }
            }
        } onCancel: {
            let waiter = state.withLock { $0.waiters.removeValue(forKey: key) }
            waiter?.resume(returning: .failure(CancellationError()))
        }
        return try result.get()
    }
}
