import CMultiprocessing
import Synchronization

/// A reentrant lock shared between processes (CPython's `multiprocessing.RLock`).
///
/// The holder may acquire it again without waiting; it is free once released as many times as
/// it was acquired. Only the holder may release it: anyone else gets ``SyncError/notOwner``.
///
/// The holder is identified by its process and, inside it, by the current Swift task, or by the
/// thread when the caller is not running in a task. So an `async` function keeps owning the lock
/// across suspensions even when it resumes on another thread, while a child task (`async let`,
/// a task group's task, `Task {}`) is a different holder and waits like any other.
///
/// It lives in shared memory like ``ProcessLock``, waits in the kernel (the `async` forms never
/// hold one of Swift's cooperative threads), and recovers from a holder's death the same way:
/// the next acquirer gets ``LockAcquisition/ownerDied(pid:)`` with a recursion depth of one,
/// whatever depth the dead holder had reached.
///
/// Pass it to a child as a stored property of the task, or in a message over a channel.
///
/// ```swift
/// let lock = try ProcessRLock()
/// lock.withLockBlocking {
///     lock.withLockBlocking { print("held twice") }
/// }
/// ```
public final class ProcessRLock: Sendable, Codable {
    // Layout: [lock word: UInt32][owner deaths: UInt32][holder token: UInt64][depth: UInt32]
    //         [magic: UInt32].
    static let layoutSize = 24
    static let magic: UInt32 = 0x524C_4B31  // "RLK1"

    let placement: SharedPlacement
    let word: LockWord
    /// This process's async waiters: one at a time sleeps in the kernel.
    private let waiters = HandoffLock()

    /// A new, unlocked reentrant lock in its own shared memory.
    public convenience init() throws(SyncError) {
        self.init(fresh: try .fresh(size: Self.layoutSize))
    }

    /// Formats the lock in zeroed memory at `placement`.
    convenience init(fresh placement: SharedPlacement) {
        self.init(placement: placement)
        FutexWord(placement.address + 20).store(Self.magic)
    }

    init(placement: SharedPlacement) {
        self.placement = placement
        self.word = LockWord(placement.address)
    }

    private var deaths: FutexWord { FutexWord(placement.address + 4) }

    private var holderToken: UnsafeMutablePointer<Atomic<UInt64>> {
        (placement.address + 8).assumingMemoryBound(to: Atomic<UInt64>.self)
    }

    private var depth: FutexWord { FutexWord(placement.address + 16) }

    /// Who is asking, within this process: the current task if there is one (top bit set), else
    /// the thread id. Never 0, which marks no holder.
    static var currentHolder: UInt64 {
        if let task = withUnsafeCurrentTask(body: { $0?.hashValue }) {
            return UInt64(bitPattern: Int64(task)) | (1 << 63)
        }
        return UInt64(UInt32(bitPattern: mp_current_tid()))
    }

    /// Whether `holder` of this process holds the lock. The token is written only by a holder
    /// while it holds the lock and cleared before it lets go, so a match cannot be stale.
    func isHeld(by holder: UInt64) -> Bool {
        UInt32(bitPattern: word.owner) == LockWord.currentOwner
            && holderToken.pointee.load(ordering: .acquiring) == holder
    }

    /// Acquires the lock, waiting up to `timeout` (forever if `nil`) without blocking a
    /// cooperative thread. Returns at once if the current task already holds it.
    ///
    /// - Throws: ``SyncError/timedOut``, or ``SyncError/cancelled`` when the waiting task is
    ///   cancelled; nothing is acquired then.
    @discardableResult
    public func acquire(timeout: Duration? = nil) async throws(SyncError) -> LockAcquisition {
        let me = Self.currentHolder
        if reenter(me) { return .acquired }
        if Task.isCancelled { throw .cancelled }
        if let outcome = word.fastLock() { return try settle(outcome, holder: me) }
        let deadline = WaitDeadline(after: timeout)
        let pid = LockWord.currentOwner
        let outcome = await WaitThreads.run(
            through: waiters, until: deadline,
            { [self] cancellation in word.sleepingLock(pid, until: deadline, cancellation: cancellation) },
            wake: { [self] in word.word.wakeAll() }, ready: { word.tryLock() },
            gaveUp: { $0 ? .cancelled : .timedOut })
        return try settle(outcome, holder: me)
    }

    /// Acquires the lock, blocking the calling thread up to `timeout` (forever if `nil`).
    /// Returns at once if the caller already holds it.
    ///
    /// - Throws: ``SyncError/timedOut``.
    @discardableResult
    public func acquireBlocking(timeout: Duration? = nil) throws(SyncError) -> LockAcquisition {
        let me = Self.currentHolder
        if reenter(me) { return .acquired }
        return try settle(word.lock(until: WaitDeadline(after: timeout)), holder: me)
    }

    /// Acquires the lock if that needs no waiting (or the caller holds it already); `nil` if
    /// another holder has it.
    public func tryAcquire() -> LockAcquisition? {
        let me = Self.currentHolder
        if reenter(me) { return .acquired }
        guard let outcome = word.tryLock() else { return nil }
        return try? settle(outcome, holder: me)
    }

    /// Releases one level of the caller's hold; the lock is free once every acquisition is
    /// released.
    ///
    /// - Throws: ``SyncError/notOwner`` when another task, thread or process holds the lock,
    ///   ``SyncError/notLocked`` when nobody does.
    public func release() throws(SyncError) {
        let me = Self.currentHolder
        guard isHeld(by: me) else { throw word.owner == 0 ? .notLocked : .notOwner }
        releaseHeld()
    }

    /// Runs `body` holding the lock, blocking the thread while it waits. Reentrant: `body` may
    /// take the lock again.
    public func withLockBlocking<Result, Failure: Error>(_ body: () throws(Failure) -> Result) throws(Failure)
        -> Result
    {
        let me = Self.currentHolder
        if !reenter(me) { _ = try? settle(word.lock(until: .never), holder: me) }
        defer { if isHeld(by: me) { releaseHeld() } }
        return try body()
    }

    /// Runs `body` holding the lock; waits (up to `timeout`) without blocking a cooperative
    /// thread. Reentrant within the same task. Throws what `body` throws, or a ``SyncError`` if
    /// the lock was not acquired.
    public func withLock<Result>(
        timeout: Duration? = nil, isolation: isolated (any Actor)? = #isolation,
        _ body: () async throws -> Result
    ) async throws -> Result {
        try await acquire(timeout: timeout)
        let me = Self.currentHolder
        defer { if isHeld(by: me) { releaseHeld() } }
        return try await body()
    }

    /// Whether some task, thread or process holds the lock now (a snapshot).
    public var isLocked: Bool { word.owner != 0 }

    /// The pid of the process holding the lock now, if any (a snapshot).
    public var holder: Int32? {
        let owner = word.owner
        return owner == 0 ? nil : owner
    }

    /// Whether the calling task (or thread, outside a task) holds the lock.
    public var isHeldByCurrentCaller: Bool { isHeld(by: Self.currentHolder) }

    /// How many times the caller has acquired the lock without releasing it; 0 if it does not
    /// hold it.
    public var recursionDepth: Int { isHeldByCurrentCaller ? Int(depth.load()) : 0 }

    /// How many times an acquirer has taken this lock over from a holder that died, across all
    /// processes.
    public var ownerDeaths: Int { Int(deaths.load()) }

    // MARK: Internals (also used by ProcessCondition)

    /// One more level for a caller that holds the lock already.
    private func reenter(_ me: UInt64) -> Bool {
        guard isHeld(by: me) else { return false }
        let current = depth.load()
        precondition(current < UInt32.max, "ProcessRLock acquired too many times")
        depth.store(current + 1)
        return true
    }

    /// Records a fresh acquisition by `holder` at `depth` levels.
    private func settle(_ outcome: LockOutcome, holder: UInt64, depth levels: UInt32 = 1) throws(SyncError)
        -> LockAcquisition
    {
        switch outcome {
        case .acquired:
            take(holder, levels)
            return .acquired
        case .ownerDied(let pid):
            _ = deaths.add(1)
            LibraryLogger.ownerDied("ProcessRLock", holder: pid)
            take(holder, levels)
            return .ownerDied(pid: pid)
        case .timedOut: throw .timedOut
        case .cancelled: throw .cancelled
        }
    }

    private func take(_ holder: UInt64, _ levels: UInt32) {
        depth.store(levels)
        holderToken.pointee.store(holder, ordering: .releasing)
    }

    /// Drops one level; the caller holds the lock.
    private func releaseHeld() {
        let current = depth.load()
        if current > 1 {
            depth.store(current - 1)
            return
        }
        depth.store(0)
        holderToken.pointee.store(0, ordering: .releasing)
        word.unlock()
    }

    /// Releases every level `holder` holds (for a condition wait); returns how many, or `nil`
    /// if it does not hold the lock.
    func releaseAll(by holder: UInt64) -> UInt32? {
        guard isHeld(by: holder) else { return nil }
        let levels = depth.load()
        depth.store(0)
        holderToken.pointee.store(0, ordering: .releasing)
        word.unlock()
        return levels
    }

    /// Takes the lock back for `holder` at `levels` (after a condition wait), whatever it takes.
    func restore(holder: UInt64, levels: UInt32) {
        _ = try? settle(word.lock(until: .never), holder: holder, depth: levels)
    }

    /// Like ``restore(holder:levels:)``, without blocking a cooperative thread; even a
    /// cancelled task takes the lock back.
    func takeBack(holder: UInt64, levels: UInt32) async {
        if let outcome = word.fastLock() {
            _ = try? settle(outcome, holder: holder, depth: levels)
            return
        }
        let pid = LockWord.currentOwner
        // In a task of its own, which the caller's cancellation does not reach.
        let outcome = await Task { [self] in
            await WaitThreads.run(
                through: waiters, until: .never,
                { [self] cancellation in word.sleepingLock(pid, until: .never, cancellation: cancellation) },
                wake: { [self] in word.word.wakeAll() }, ready: { word.tryLock() },
                gaveUp: { $0 ? .cancelled : .timedOut })
        }.value
        _ = try? settle(outcome, holder: holder, depth: levels)
    }

    /// Encodes the shared memory (its descriptor travels with the message) and the offset.
    public func encode(to encoder: any Encoder) throws { try placement.encode(to: encoder) }

    /// Maps the lock's memory in this process.
    ///
    /// - Throws: ``SharedMemoryError/layoutMismatch(_:)`` if the memory does not hold a
    ///   reentrant lock at that offset.
    public convenience init(from decoder: any Decoder) throws {
        let placement = try SharedPlacement.decode("ProcessRLock", size: Self.layoutSize, from: decoder)
        try Self.check(placement)
        self.init(placement: placement)
    }

    static func check(_ placement: SharedPlacement) throws {
        guard FutexWord(placement.address + 20).load() == magic else {
            throw SharedMemoryError.layoutMismatch(
                "no ProcessRLock at offset \(placement.offset) of a \(placement.memory.size)-byte segment")
        }
    }
}
