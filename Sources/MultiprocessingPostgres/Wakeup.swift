import Dispatch
import Synchronization

/// A sticky wake-up for one waiting loop: ``signal()`` ends the current or the next
/// ``wait(upTo:)``, and several signals before a wait count as one.
///
/// A wait is one continuation: a signal resumes it directly, and its time limit is a Dispatch
/// timer (off the cooperative pool) that resumes it only if it is still the same wait. A task
/// group racing the signal against a sleeping child cost four more jobs on the cooperative pool
/// per wake-up, on every hop of a task's way through a worker.
final class Wakeup: Sendable {
    private struct State {
        var signalled = false
        var waiter: CheckedContinuation<Bool, Never>?
        /// Tells a late timer or cancellation from the wait it was made for.
        var wait: UInt64 = 0
    }

    private let state = Mutex(State())

    init() {}

    /// Wakes the waiter, or the next one.
    func signal() {
        let waiter = state.withLock { state -> CheckedContinuation<Bool, Never>? in
            if let waiter = state.waiter {
                state.waiter = nil
                return waiter
            }
            state.signalled = true
            return nil
        }
        waiter?.resume(returning: true)
    }

    /// Returns when signalled, after `timeout`, or when the task is cancelled; `true` when
    /// signalled.
    @discardableResult
    func wait(upTo timeout: Duration) async -> Bool {
        let (signalled, wait) = state.withLock { state -> (Bool, UInt64) in
            state.wait &+= 1
            defer { state.signalled = false }
            return (state.signalled, state.wait)
        }
        if signalled { return true }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
                let resumeNow = state.withLock { state -> Bool? in
                    if state.signalled {
                        state.signalled = false
                        return true
                    }
                    if Task.isCancelled { return false }
                    state.waiter = continuation
                    return nil
                }
                if let resumeNow {
                    continuation.resume(returning: resumeNow)
                    return
                }
                let nanoseconds = max(0, timeout.nanoseconds)
                DispatchQueue.global().asyncAfter(
                    deadline: .now() + .nanoseconds(Int(min(nanoseconds, Int64(Int.max))))
                ) {
                    self.end(wait, signalled: false)
                }
            }
        } onCancel: {
            end(wait, signalled: false)
        }
    }

    /// Resumes wait number `wait` if it is still waiting.
    private func end(_ wait: UInt64, signalled: Bool) {
        let waiter = state.withLock { state -> CheckedContinuation<Bool, Never>? in
            guard state.wait == wait, let waiter = state.waiter else { return nil }
            state.waiter = nil
            return waiter
        }
        waiter?.resume(returning: signalled)
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
