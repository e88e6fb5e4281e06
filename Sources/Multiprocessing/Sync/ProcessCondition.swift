import CMultiprocessing

/// A condition variable shared between processes (CPython's `multiprocessing.Condition`).
///
/// A condition pairs a lock with a way to sleep until another process says that something
/// changed. Hold the lock, check the shared state, and ``wait(timeout:)`` while it is not what
/// you need: waiting releases the lock, sleeps until a ``notify(_:)`` or ``notifyAll()``, and
/// takes the lock back before returning (always, even on timeout or cancellation).
/// ``wait(for:timeout:isolation:)`` does the checking loop for you.
///
/// The lock is a ``ProcessRLock`` made for the condition (CPython's default), or a
/// ``ProcessLock`` or ``ProcessRLock`` you give it (use that lock's own methods or the
/// condition's ``acquire(timeout:)``/``release()``, which are the same thing).
///
/// Waits may end without a notification (a spurious wake-up, as with every condition
/// variable): check the state again after ``wait(timeout:)`` returns `true`, or use
/// ``wait(for:timeout:isolation:)``. Waiters sleep in the kernel on a futex sequence counter
/// and, in the `async` forms, never hold one of Swift's cooperative threads.
///
/// Pass it to a child as a stored property of the task, or in a message over a channel; the
/// lock goes with it.
///
/// ```swift
/// let condition = try ProcessCondition()
/// let ready = try SharedValue(0)
/// // waiting side
/// try await condition.withLock {
///     try await condition.wait(for: { ready.pointer.pointee == 1 }, timeout: .seconds(5))
/// }
/// // notifying side
/// try condition.withLockBlocking {
///     ready.pointer.pointee = 1
///     try condition.notifyAll()
/// }
/// ```
public final class ProcessCondition: Sendable, Codable {
    enum Lock: Sendable {
        case plain(ProcessLock)
        case reentrant(ProcessRLock)

        var placement: SharedPlacement {
            switch self {
            case .plain(let lock): lock.placement
            case .reentrant(let lock): lock.placement
            }
        }
    }

    let lock: Lock
    let sequence: ConditionSequence
    /// This handle's async waiters: one thread sleeps for all of them.
    private let watch: SequenceWatch

    /// A condition with a new ``ProcessRLock`` of its own (in the same shared memory).
    public convenience init() throws(SyncError) {
        let placement = try SharedPlacement.fresh(
            size: ProcessRLock.layoutSize + ConditionSequence.layoutSize)
        self.init(
            lock: .reentrant(ProcessRLock(fresh: placement)),
            sequence: .formatted(SharedPlacement(memory: placement.memory, offset: ProcessRLock.layoutSize)))
    }

    /// A condition around `lock`, a plain lock shared with whoever else uses it.
    public convenience init(lock: ProcessLock) throws(SyncError) {
        self.init(lock: .plain(lock), sequence: .formatted(try .fresh(size: ConditionSequence.layoutSize)))
    }

    /// A condition around `lock`, a reentrant lock shared with whoever else uses it. A wait
    /// releases every level the caller holds and restores them afterwards.
    public convenience init(lock: ProcessRLock) throws(SyncError) {
        self.init(
            lock: .reentrant(lock), sequence: .formatted(try .fresh(size: ConditionSequence.layoutSize)))
    }

    init(lock: Lock, sequence: ConditionSequence) {
        self.lock = lock
        self.sequence = sequence
        self.watch = SequenceWatch(sequence, counted: true)
    }

    // MARK: The lock

    /// Acquires the condition's lock, waiting up to `timeout` without blocking a cooperative
    /// thread (see ``ProcessLock/acquire(timeout:)``).
    @discardableResult
    public func acquire(timeout: Duration? = nil) async throws(SyncError) -> LockAcquisition {
        switch lock {
        case .plain(let lock): try await lock.acquire(timeout: timeout)
        case .reentrant(let lock): try await lock.acquire(timeout: timeout)
        }
    }

    /// Acquires the condition's lock, blocking the calling thread up to `timeout` (see
    /// ``ProcessLock/acquireBlocking(timeout:)``).
    @discardableResult
    public func acquireBlocking(timeout: Duration? = nil) throws(SyncError) -> LockAcquisition {
        switch lock {
        case .plain(let lock): try lock.acquireBlocking(timeout: timeout)
        case .reentrant(let lock): try lock.acquireBlocking(timeout: timeout)
        }
    }

    /// Acquires the condition's lock if that needs no waiting; `nil` otherwise.
    public func tryAcquire() -> LockAcquisition? {
        switch lock {
        case .plain(let lock): lock.tryAcquire()
        case .reentrant(let lock): lock.tryAcquire()
        }
    }

    /// Releases the condition's lock (see ``ProcessLock/release()`` and
    /// ``ProcessRLock/release()``).
    public func release() throws(SyncError) {
        switch lock {
        case .plain(let lock): try lock.release()
        case .reentrant(let lock): try lock.release()
        }
    }

    /// Runs `body` holding the condition's lock, blocking the thread while it waits for it.
    public func withLockBlocking<Result, Failure: Error>(_ body: () throws(Failure) -> Result) throws(Failure)
        -> Result
    {
        switch lock {
        case .plain(let lock): try lock.withLockBlocking(body)
        case .reentrant(let lock): try lock.withLockBlocking(body)
        }
    }

    /// Runs `body` holding the condition's lock; waits for it (up to `timeout`) without
    /// blocking a cooperative thread. Throws what `body` throws, or a ``SyncError`` if the lock
    /// was not acquired.
    public func withLock<Result>(
        timeout: Duration? = nil, isolation: isolated (any Actor)? = #isolation,
        _ body: () async throws -> Result
    ) async throws -> Result {
        switch lock {
        case .plain(let lock): try await lock.withLock(timeout: timeout, body)
        case .reentrant(let lock): try await lock.withLock(timeout: timeout, body)
        }
    }

    // MARK: Waiting

    /// Releases the lock, waits for a notification up to `timeout` (forever if `nil`) without
    /// blocking a cooperative thread, and takes the lock back. The caller must hold the lock.
    ///
    /// - Returns: `false` if the timeout passed, `true` otherwise (a notification, or
    ///   occasionally a spurious wake-up: check the shared state again).
    /// - Throws: ``SyncError/notLocked`` or ``SyncError/notOwner`` if the caller does not hold
    ///   the lock (nothing waited); ``SyncError/cancelled`` if the task was cancelled (the lock
    ///   is held again then too).
    @discardableResult
    public func wait(timeout: Duration? = nil) async throws(SyncError) -> Bool {
        try checkHeld()
        if Task.isCancelled { throw .cancelled }
        let ticket = try beginWait()
        // Suspended while one thread sleeps for every waiting task of this process.
        let outcome = await watch.wait(from: ticket.sequence, until: WaitDeadline(after: timeout))
        sequence.leave()
        switch lock {
        case .plain(let lock): await lock.acquireUncancellable()
        case .reentrant(let lock): await lock.takeBack(holder: ticket.holder, levels: ticket.levels)
        }
        return try Self.settle(outcome)
    }

    /// Releases the lock, waits for a notification blocking the calling thread up to `timeout`
    /// (forever if `nil`), and takes the lock back. The caller must hold the lock.
    ///
    /// - Returns: `false` if the timeout passed, `true` otherwise (a notification, or
    ///   occasionally a spurious wake-up).
    /// - Throws: ``SyncError/notLocked`` or ``SyncError/notOwner`` if the caller does not hold
    ///   the lock.
    @discardableResult
    public func waitBlocking(timeout: Duration? = nil) throws(SyncError) -> Bool {
        let ticket = try beginWait()
        let outcome = sequence.sleep(
            from: ticket.sequence, until: WaitDeadline(after: timeout), cancellation: nil)
        endWait(ticket)
        return try Self.settle(outcome)
    }

    /// Waits until `predicate` is true (CPython's `wait_for`): checks it, and while it is false
    /// waits for notifications, up to `timeout` in all. The caller must hold the lock;
    /// `predicate` runs with the lock held.
    ///
    /// - Returns: the predicate's last value: `false` means the timeout passed first.
    /// - Throws: as ``wait(timeout:)``.
    @discardableResult
    public func wait(
        for predicate: () -> Bool, timeout: Duration? = nil,
        isolation: isolated (any Actor)? = #isolation
    ) async throws(SyncError) -> Bool {
        let deadline = WaitDeadline(after: timeout)
        while true {
            if predicate() { return true }
            if deadline.hasPassed { return false }
            try await wait(timeout: deadline.remaining)
        }
    }

    /// Waits until `predicate` is true, blocking the calling thread; see
    /// ``wait(for:timeout:isolation:)``.
    @discardableResult
    public func waitBlocking(for predicate: () -> Bool, timeout: Duration? = nil) throws(SyncError) -> Bool {
        let deadline = WaitDeadline(after: timeout)
        while true {
            if predicate() { return true }
            if deadline.hasPassed { return false }
            try waitBlocking(timeout: deadline.remaining)
        }
    }

    // MARK: Notifying

    /// Wakes up to `count` processes or tasks waiting on the condition (one by default). The
    /// caller must hold the lock. Waiters are woken in no particular order, and an occasional
    /// extra waiter may wake too.
    ///
    /// - Throws: ``SyncError/notLocked`` or ``SyncError/notOwner`` if the caller does not hold
    ///   the lock.
    public func notify(_ count: Int = 1) throws(SyncError) {
        precondition(count >= 0, "ProcessCondition.notify needs a count of at least 0")
        try checkHeld()
        if count > 0 { sequence.notify(Int32(clamping: count)) }
    }

    /// Wakes every process and task waiting on the condition. The caller must hold the lock.
    ///
    /// - Throws: ``SyncError/notLocked`` or ``SyncError/notOwner`` if the caller does not hold
    ///   the lock.
    public func notifyAll() throws(SyncError) {
        try checkHeld()
        sequence.notify(Int32.max)
    }

    // MARK: Internals

    /// What a waiter needs to take its lock back: who it is, and how deep it held it.
    struct Ticket: Sendable {
        let sequence: UInt32
        let holder: UInt64
        let levels: UInt32
    }

    /// Checks that the caller holds the lock, notes the sequence, then releases the lock.
    private func beginWait() throws(SyncError) -> Ticket {
        switch lock {
        case .plain(let lock):
            try checkHeld()
            let start = sequence.enter()
            try lock.release()
            return Ticket(sequence: start, holder: 0, levels: 0)
        case .reentrant(let lock):
            let holder = ProcessRLock.currentHolder
            try checkHeld()
            let start = sequence.enter()
            guard let levels = lock.releaseAll(by: holder) else {
                sequence.leave()
                throw .notOwner
            }
            return Ticket(sequence: start, holder: holder, levels: levels)
        }
    }

    /// Leaves the sleepers and takes the lock back, however long that takes.
    private func endWait(_ ticket: Ticket) {
        sequence.leave()
        switch lock {
        case .plain(let lock): _ = try? lock.acquireBlocking()
        case .reentrant(let lock): lock.restore(holder: ticket.holder, levels: ticket.levels)
        }
    }

    /// A plain lock must be held by this process; a reentrant one by the caller.
    private func checkHeld() throws(SyncError) {
        switch lock {
        case .plain(let lock):
            guard lock.holder == mp_current_pid() else { throw .notLocked }
        case .reentrant(let lock):
            guard lock.isHeldByCurrentCaller else { throw lock.isLocked ? .notOwner : .notLocked }
        }
    }

    private static func settle(_ outcome: LockOutcome) throws(SyncError) -> Bool {
        switch outcome {
        case .acquired, .ownerDied: return true
        case .timedOut: return false
        case .cancelled: throw .cancelled
        }
    }

    private enum CodingKeys: String, CodingKey { case sequence, reentrant, lockOffset, lock }

    /// Encodes the shared memory (its descriptor travels with the message) and the lock: only
    /// its offset when it lives in the same memory, otherwise the lock's own handle.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try sequence.placement.encode(to: container.superEncoder(forKey: .sequence))
        let lockPlacement = lock.placement
        switch lock {
        case .plain(let lock):
            try container.encode(false, forKey: .reentrant)
            if lockPlacement.memory !== sequence.placement.memory {
                try container.encode(lock, forKey: .lock)
            }
        case .reentrant(let lock):
            try container.encode(true, forKey: .reentrant)
            if lockPlacement.memory !== sequence.placement.memory {
                try container.encode(lock, forKey: .lock)
            }
        }
        if lockPlacement.memory === sequence.placement.memory {
            try container.encode(lockPlacement.offset, forKey: .lockOffset)
        }
    }

    /// Maps the condition's memory, and its lock's, in this process.
    ///
    /// - Throws: ``SharedMemoryError/layoutMismatch(_:)`` if the memory does not hold a
    ///   condition (or its lock) where the handle says.
    public convenience init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let sequence = try ConditionSequence.decode(from: container.superDecoder(forKey: .sequence))
        let reentrant = try container.decode(Bool.self, forKey: .reentrant)
        let lock: Lock
        if let offset = try container.decodeIfPresent(Int.self, forKey: .lockOffset) {
            let size = reentrant ? ProcessRLock.layoutSize : ProcessLock.layoutSize
            let memory = sequence.placement.memory
            guard offset >= 0, offset % 8 == 0, offset <= memory.size - size else {
                throw SharedMemoryError.layoutMismatch(
                    "ProcessCondition lock at offset \(offset) does not fit a segment of \(memory.size) bytes"
                )
            }
            let placement = SharedPlacement(memory: memory, offset: offset)
            if reentrant {
                try ProcessRLock.check(placement)
                lock = .reentrant(ProcessRLock(placement: placement))
            } else {
                lock = .plain(ProcessLock(placement: placement))
            }
        } else if reentrant {
            lock = .reentrant(try container.decode(ProcessRLock.self, forKey: .lock))
        } else {
            lock = .plain(try container.decode(ProcessLock.self, forKey: .lock))
        }
        self.init(lock: lock, sequence: sequence)
    }
}

/// The waiting half of a condition variable in shared memory: a sequence number that every
/// notification bumps (waiters sleep on it as a futex), a count of sleepers, so that a
/// notification with nobody waiting costs no system call, and a count of wake-ups owed.
///
/// A notification for `count` waiters adds `count` wake-ups (at most one per sleeper) and a
/// counted waiter returns only once the sequence moved on from where it started *and* it took
/// one of them: so `notify(1)` ends one wait even when the futex wake-up reaches a thread that
/// sleeps for a thousand tasks (see ``SequenceWatch``). The barrier, which always wakes everyone,
/// does not count.
///
/// Callers hold the condition's lock around ``enter()`` and ``notify(_:)``, which orders them:
/// a waiter that noted the sequence before releasing the lock cannot miss a later notification.
struct ConditionSequence: Sendable {
    // Layout: [sequence: UInt32][sleepers: UInt32][magic: UInt32][wake-ups owed: UInt32].
    static let layoutSize = 16
    static let magic: UInt32 = 0x434F_4E31  // "CON1"

    let placement: SharedPlacement

    var word: FutexWord { FutexWord(placement.address) }
    private var sleepers: FutexWord { FutexWord(placement.address + 4) }
    private var owed: FutexWord { FutexWord(placement.address + 12) }

    /// Writes the magic into fresh zeroed memory.
    static func formatted(_ placement: SharedPlacement) -> ConditionSequence {
        FutexWord(placement.address + 8).store(magic)
        return ConditionSequence(placement: placement)
    }

    static func decode(from decoder: any Decoder) throws -> ConditionSequence {
        let placement = try SharedPlacement.decode("ProcessCondition", size: layoutSize, from: decoder)
        guard FutexWord(placement.address + 8).load() == magic else {
            throw SharedMemoryError.layoutMismatch("no ProcessCondition at offset \(placement.offset)")
        }
        return ConditionSequence(placement: placement)
    }

    /// Joins the sleepers (lock held); returns the sequence to sleep on.
    func enter() -> UInt32 {
        _ = sleepers.addSequentially(1)
        return word.load()
    }

    /// Leaves the sleepers; wake-ups owed to more waiters than remain are dropped.
    func leave() {
        let remaining = sleepers.subtractSequentially(1) &- 1
        var current = owed.load()
        while current > remaining {
            let (exchanged, found) = owed.compareExchange(current, remaining)
            if exchanged { return }
            current = found
        }
    }

    /// Takes one wake-up owed, if there is one.
    func takeWakeUp() -> Bool {
        var current = owed.load()
        while current > 0 {
            let (exchanged, found) = owed.compareExchange(current, current - 1)
            if exchanged { return true }
            current = found
        }
        return false
    }

    /// Gives back a wake-up taken for a waiter that was gone.
    func returnWakeUp() { _ = owed.add(1) }

    /// Whether a waiter that started at `start` may return now: the sequence moved on and, if
    /// `counted`, a wake-up was there to take.
    func isNotified(since start: UInt32, counted: Bool) -> Bool {
        word.load() != start && (!counted || takeWakeUp())
    }

    /// Sleeps until the sequence moves on from `start` (and, if `counted`, a wake-up is taken),
    /// the deadline passes or the wait is cancelled. `.acquired` stands for notified.
    func sleep(
        from start: UInt32, until deadline: WaitDeadline, cancellation: WaitCancellation?,
        counted: Bool = true
    ) -> LockOutcome {
        while true {
            let current = word.load()
            if current != start && (!counted || takeWakeUp()) { return .acquired }
            if cancellation?.isCancelled == true { return .cancelled }
            if deadline.hasPassed { return .timedOut }
            // On the current value: a waiter that found no wake-up to take sleeps on.
            _ = word.wait(ifEqualTo: current, until: deadline, cancellation: cancellation)
        }
    }

    /// Moves the sequence on and wakes up to `count` sleepers (lock held).
    func notify(_ count: Int32) {
        let waiting = sleepers.loadSequentially()
        var current = owed.load()
        while true {
            let target = UInt32(min(UInt64(current) + UInt64(count), UInt64(waiting)))
            let (exchanged, found) = owed.compareExchange(current, target)
            if exchanged { break }
            current = found
        }
        _ = word.addSequentially(1)
        if waiting > 0 { word.wake(count) }
    }
}
