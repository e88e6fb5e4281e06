import Synchronization

/// How a lock was acquired.
public enum LockAcquisition: Sendable, Hashable {
    /// The lock was free or released normally.
    case acquired
    /// The previous holder (process `pid`) died holding the lock. The lock is now yours and works
    /// as usual, but whatever it guarded may be half-updated: check or repair it.
    case ownerDied(pid: Int32)
}

/// A mutual-exclusion lock shared between processes (CPython's `multiprocessing.Lock`).
///
/// It lives in shared memory: a free lock is taken with one atomic instruction and a waiter
/// sleeps in the kernel (a futex), never spinning for long and, in the `async` forms, never
/// holding one of Swift's cooperative threads. Like CPython's lock it is not reentrant and any
/// thread or process may release it; see ``ProcessRLock`` for an owned, reentrant lock.
///
/// If the holder dies (even by SIGKILL), the next acquirer gets the lock with
/// ``LockAcquisition/ownerDied(pid:)`` instead of waiting forever; ``ownerDeaths`` counts such
/// recoveries for every process to see.
///
/// Pass it to a child as a stored property of the task, or in a message over a channel.
///
/// ```swift
/// let lock = try ProcessLock()
/// lock.withLockBlocking { print("only one process prints at a time") }
/// ```
public final class ProcessLock: Sendable, Codable {
    // Layout: [lock word: UInt32][owner deaths: UInt32].
    static let layoutSize = 8

    let placement: SharedPlacement
    let word: LockWord
    /// This process's async waiters: one at a time sleeps on the word.
    private let waiters = HandoffLock()

    /// A new, unlocked lock in its own shared memory.
    public convenience init() throws(SyncError) {
        self.init(placement: try .fresh(size: Self.layoutSize))
    }

    init(placement: SharedPlacement) {
        self.placement = placement
        self.word = LockWord(placement.address)
    }

    private var deaths: FutexWord { FutexWord(placement.address + 4) }

    /// Acquires the lock, waiting up to `timeout` (forever if `nil`) without blocking a
    /// cooperative thread. Throws ``SyncError/timedOut``, or ``SyncError/cancelled`` when the
    /// waiting task is cancelled.
    @discardableResult
    public func acquire(timeout: Duration? = nil) async throws(SyncError) -> LockAcquisition {
        if Task.isCancelled { throw .cancelled }
        if let outcome = word.fastLock() { return try settle(outcome) }
        let deadline = WaitDeadline(after: timeout)
        let me = LockWord.currentOwner
        let outcome = await WaitThreads.run(
            through: waiters, until: deadline,
            { [self] cancellation in word.sleepingLock(me, until: deadline, cancellation: cancellation) },
            wake: { [self] in word.word.wakeAll() }, ready: { word.tryLock() },
            gaveUp: { $0 ? .cancelled : .timedOut })
        return try settle(outcome)
    }

    /// Acquires the lock however long it takes, even if the task is cancelled (a condition wait
    /// takes its lock back), without blocking a cooperative thread.
    func acquireUncancellable() async {
        if let outcome = word.fastLock() {
            _ = try? settle(outcome)
            return
        }
        // In a task of its own, which the caller's cancellation does not reach.
        _ = await Task { try? await acquire() }.value
    }

    /// Acquires the lock, blocking the calling thread up to `timeout` (forever if `nil`).
    @discardableResult
    public func acquireBlocking(timeout: Duration? = nil) throws(SyncError) -> LockAcquisition {
        try settle(word.lock(until: WaitDeadline(after: timeout)))
    }

    /// Acquires the lock if that needs no waiting; `nil` if another holder has it.
    public func tryAcquire() -> LockAcquisition? {
        guard let outcome = word.tryLock() else { return nil }
        return try? settle(outcome)
    }

    /// Releases the lock. Throws ``SyncError/notLocked`` if it was not held.
    public func release() throws(SyncError) {
        guard word.unlock() else { throw .notLocked }
    }

    /// Runs `body` holding the lock, blocking the thread while it waits. Best for short critical
    /// sections, in synchronous code, or where the wait is known to be brief.
    public func withLockBlocking<Result, Failure: Error>(_ body: () throws(Failure) -> Result) throws(Failure)
        -> Result
    {
        if case .ownerDied(let holder) = word.lock(until: .never) {
            _ = deaths.add(1)
            LibraryLogger.ownerDied("ProcessLock", holder: holder)
        }
        defer { word.unlock() }
        return try body()
    }

    /// Runs `body` holding the lock; waits (up to `timeout`) without blocking a cooperative
    /// thread. Throws what `body` throws, or a ``SyncError`` if the lock was not acquired.
    public func withLock<Result>(
        timeout: Duration? = nil, isolation: isolated (any Actor)? = #isolation,
        _ body: () async throws -> Result
    ) async throws -> Result {
        try await acquire(timeout: timeout)
        defer { word.unlock() }
        return try await body()
    }

    /// Whether some process holds the lock now (a snapshot).
    public var isLocked: Bool { word.owner != 0 }

    /// The pid of the process holding the lock now, if any (a snapshot).
    public var holder: Int32? {
        let owner = word.owner
        return owner == 0 ? nil : owner
    }

    /// How many times an acquirer has taken this lock over from a holder that died, across all
    /// processes.
    public var ownerDeaths: Int { Int(deaths.load()) }

    private func settle(_ outcome: LockOutcome) throws(SyncError) -> LockAcquisition {
        switch outcome {
        case .acquired: return .acquired
        case .ownerDied(let pid):
            _ = deaths.add(1)
            LibraryLogger.ownerDied("ProcessLock", holder: pid)
            return .ownerDied(pid: pid)
        case .timedOut: throw .timedOut
        case .cancelled: throw .cancelled
        }
    }

    /// Encodes the shared memory (its descriptor travels with the message) and the offset.
    public func encode(to encoder: any Encoder) throws { try placement.encode(to: encoder) }

    /// Maps the lock's memory in this process.
    public convenience init(from decoder: any Decoder) throws {
        self.init(placement: try .decode("ProcessLock", size: Self.layoutSize, from: decoder))
    }
}
