import Synchronization

/// The result of work submitted to a ``ProcessPool``: CPython's `AsyncResult` / `Future`. One
/// call (``ProcessPool/submit(_:_:)``), one task (`submit(task)`, CPython's
/// `apply_async(f, (q,))`) or a whole map (``ProcessPool/submitMap(_:over:chunkSize:progress:)``,
/// CPython's `map_async`).
///
/// Await ``value``, await it with a time-out, check ``isDone``, or ``cancel()`` it (a running
/// task's worker is stopped and replaced).
public final class PoolFuture<Output: Sendable>: Sendable {
    private let state = Mutex<Result<Output, any Error>?>(nil)
    private let arrived = OneShotEvent()
    private let canceller: Mutex<(@Sendable () -> Void)?>

    init(canceller: (@Sendable () -> Void)? = nil) {
        self.canceller = Mutex(canceller)
    }

    func setCanceller(_ cancel: @escaping @Sendable () -> Void) {
        canceller.withLock { if !isDone { $0 = cancel } }
    }

    func complete(_ result: Result<Output, any Error>) {
        let first = state.withLock { current -> Bool in
            guard current == nil else { return false }
            current = result
            return true
        }
        guard first else { return }
        canceller.withLock { $0 = nil }  // It refers to the job, which refers to this future.
        arrived.fire()
    }

    /// `true` once the result (or an error) is in.
    public var isDone: Bool { state.withLock { $0 != nil } }

    /// The result if it is in, without waiting.
    public var result: Result<Output, any Error>? { state.withLock { $0 } }

    /// Waits for the result. Cancelling the awaiting task cancels the work.
    public var value: Output {
        get async throws {
            if let result = self.result { return try result.get() }  // No suspension.
            await withTaskCancellationHandler {
                await arrived.wait()
            } onCancel: {
                cancel()
            }
            guard let result = self.result else { throw PoolError.cancelled }
            return try result.get()
        }
    }

    /// Waits at most `timeout`; throws ``PoolError/resultTimedOut`` if the result is not in by
    /// then (the work goes on: ``cancel()`` it to stop it). CPython's `get(timeout)`.
    public func value(timeout: Duration) async throws -> Output {
        await arrived.wait(timeout: timeout)
        guard let result = self.result else {
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
}
