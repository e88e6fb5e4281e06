import Synchronization

/// The result of work submitted to a ``ProcessPool``: CPython's `AsyncResult` / `Future`.
///
/// Await ``value``, await it with a time-out, check ``isDone``, or ``cancel()`` it (a running
/// task's worker is stopped and replaced).
public final class PoolFuture<Output: Sendable>: Sendable {
    private struct State {
        var result: Result<Output, any Error>?
        var waiters: [UInt64: UnsafeContinuation<Void, Never>] = [:]
        var nextWaiter: UInt64 = 0
    }

    private let state = Mutex(State())
    private let canceller: Mutex<(@Sendable () -> Void)?>

    init(canceller: (@Sendable () -> Void)? = nil) {
        self.canceller = Mutex(canceller)
    }

    func setCanceller(_ cancel: @escaping @Sendable () -> Void) { canceller.withLock { $0 = cancel } }

    func complete(_ result: Result<Output, any Error>) {
        let waiters = state.withLock { s -> [UnsafeContinuation<Void, Never>] in
            guard s.result == nil else { return [] }
            s.result = result
            defer { s.waiters.removeAll() }
            return Array(s.waiters.values)
        }
        for waiter in waiters { waiter.resume() }
    }

    /// `true` once the result (or an error) is in.
    public var isDone: Bool { state.withLock { $0.result != nil } }

    /// The result if it is in, without waiting.
    public var result: Result<Output, any Error>? { state.withLock { $0.result } }

    /// Waits for the result. Cancelling the awaiting task cancels the work.
    public var value: Output {
        get async throws {
            if let result = state.withLock({ $0.result }) { return try result.get() }  // No suspension.
            await withTaskCancellationHandler {
                await waitForResult()
            } onCancel: {
                cancel()
            }
            guard let result = state.withLock({ $0.result }) else { throw PoolError.cancelled }
            return try result.get()
        }
    }

    /// Waits at most `timeout`; throws ``PoolError/resultTimedOut`` if the result is not in by
    /// then (the work goes on: ``cancel()`` it to stop it). CPython's `get(timeout)`.
    public func value(timeout: Duration) async throws -> Output {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.waitForResult() }
            group.addTask { try? await Task.sleep(for: timeout) }
            await group.next()
            group.cancelAll()
        }
        guard let result = state.withLock({ $0.result }) else {
            if Task.isCancelled { throw PoolError.cancelled }
            throw PoolError.resultTimedOut
        }
        return try result.get()
    }

    /// Cancels the work: a queued task never runs, a running one's worker is stopped and
    /// replaced. The result becomes ``PoolError/cancelled`` unless it was already in.
    public func cancel() {
        canceller.withLock { $0 }?()
    }

    /// Waits until the result is in, or the waiting task is cancelled.
    func waitForResult() async {
        let id = state.withLock { s in
            defer { s.nextWaiter += 1 }
            return s.nextWaiter
        }
        await withTaskCancellationHandler {
            await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
                let done = state.withLock { s in
                    if s.result != nil { return true }
                    s.waiters[id] = continuation
                    return false
                }
                if done { continuation.resume() }
                if Task.isCancelled { state.withLock { $0.waiters.removeValue(forKey: id) }?.resume() }
            }
        } onCancel: {
            state.withLock { $0.waiters.removeValue(forKey: id) }?.resume()
        }
    }
}
