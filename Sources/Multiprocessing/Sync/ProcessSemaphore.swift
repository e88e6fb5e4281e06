/// A counting semaphore shared between processes (CPython's `multiprocessing.Semaphore`, and
/// `BoundedSemaphore` when given a ``limit``).
///
/// ``acquire(timeout:)`` takes one unit, waiting while there is none; ``release(_:)`` puts units
/// back and wakes as many waiters. Waiters sleep in the kernel (a futex) and, in the `async`
/// forms, never hold one of Swift's cooperative threads. Any task, thread or process may
/// release: a semaphore has no owner, so units held by a process that dies are not given back.
///
/// A **bounded** semaphore (`limit` set) refuses to count past its limit: a release that
/// would throws ``SyncError/overReleased(limit:)`` and changes nothing, catching releases that
/// were never matched by an acquisition. An unbounded semaphore counts up to `Int32.max`.
///
/// Pass it to a child as a stored property of the task, or in a message over a channel.
///
/// ```swift
/// let slots = try ProcessSemaphore(value: 2, limit: 2)   // at most two processes at a time
/// try await slots.acquire()
/// defer { try? slots.release() }
/// ```
public final class ProcessSemaphore: Sendable, Codable {
    // Layout: [value: UInt32][sleepers: UInt32][limit: UInt32, UInt32.max if unbounded]
    //         [magic: UInt32].
    static let layoutSize = 16
    static let magic: UInt32 = 0x5345_4D31  // "SEM1"
    static let unbounded = UInt32.max
    /// The most an unbounded semaphore counts to.
    static let maximumValue = Int(Int32.max)

    let placement: SharedPlacement
    /// This process's async waiters: one at a time sleeps in the kernel.
    private let waiters = HandoffLock()

    /// The highest value a release may bring the semaphore to, or `nil` if unbounded.
    public let limit: Int?

    /// A semaphore holding `value` units, bounded by `limit` if given.
    ///
    /// - Parameters:
    ///   - value: the units available at first, `0...Int32.max`.
    ///   - limit: for a bounded semaphore, the most units it may ever hold (`value...Int32.max`);
    ///     CPython's `BoundedSemaphore(n)` is `ProcessSemaphore(value: n, limit: n)`.
    public init(value: Int = 1, limit: Int? = nil) throws(SyncError) {
        precondition(
            value >= 0 && value <= Self.maximumValue, "ProcessSemaphore value must be in 0...Int32.max")
        if let limit {
            precondition(
                limit >= value && limit <= Self.maximumValue,
                "ProcessSemaphore limit must be in value...Int32.max")
        }
        placement = try .fresh(size: Self.layoutSize)
        self.limit = limit
        count.store(UInt32(value))
        FutexWord(placement.address + 8).store(limit.map { UInt32($0) } ?? Self.unbounded)
        FutexWord(placement.address + 12).store(Self.magic)
    }

    private var count: FutexWord { FutexWord(placement.address) }
    private var sleepers: FutexWord { FutexWord(placement.address + 4) }
    private var ceiling: UInt32 { limit.map { UInt32($0) } ?? UInt32(Self.maximumValue) }

    /// Takes one unit, waiting up to `timeout` (forever if `nil`) without blocking a
    /// cooperative thread.
    ///
    /// - Throws: ``SyncError/timedOut``, or ``SyncError/cancelled`` when the waiting task is
    ///   cancelled; no unit is taken then.
    public func acquire(timeout: Duration? = nil) async throws(SyncError) {
        if Task.isCancelled { throw .cancelled }
        if tryAcquire() { return }
        let deadline = WaitDeadline(after: timeout)
        let outcome = await WaitThreads.run(
            through: waiters, until: deadline,
            { [self] cancellation in take(until: deadline, cancellation: cancellation) },
            wake: { [self] in count.wakeAll() }, ready: { tryAcquire() ? .acquired : nil },
            gaveUp: { $0 ? .cancelled : .timedOut })
        try settle(outcome)
    }

    /// Takes one unit, blocking the calling thread up to `timeout` (forever if `nil`).
    ///
    /// - Throws: ``SyncError/timedOut``; no unit is taken then.
    public func acquireBlocking(timeout: Duration? = nil) throws(SyncError) {
        try settle(take(until: WaitDeadline(after: timeout), cancellation: nil))
    }

    /// Takes one unit if one is available now; `false` otherwise.
    public func tryAcquire() -> Bool {
        var value = count.load()
        while value > 0 {
            let (exchanged, found) = count.compareExchange(value, value - 1)
            if exchanged { return true }
            value = found
        }
        return false
    }

    /// Puts `units` back (one by default) and wakes up to as many waiters, in any process.
    ///
    /// - Throws: ``SyncError/overReleased(limit:)`` if that would take the value past
    ///   ``limit`` (or past `Int32.max` when unbounded); the value is unchanged then.
    public func release(_ units: Int = 1) throws(SyncError) {
        precondition(units >= 1, "ProcessSemaphore releases at least one unit")
        let ceiling = ceiling
        var value = count.load()
        while true {
            guard units <= Int(ceiling - min(value, ceiling)) else {
                throw .overReleased(limit: Int(ceiling))
            }
            let (exchanged, found) = count.compareExchangeSequentially(value, value + UInt32(units))
            if exchanged { break }
            value = found
        }
        if sleepers.loadSequentially() > 0 { count.wake(Int32(units)) }
    }

    /// The units available now (a snapshot; CPython's `get_value`).
    public var value: Int { Int(count.load()) }

    /// Runs `body` holding one unit, waiting for it up to `timeout` without blocking a
    /// cooperative thread, and gives the unit back afterwards. Throws what `body` throws, or a
    /// ``SyncError`` if no unit was taken.
    public func withUnit<Result>(
        timeout: Duration? = nil, isolation: isolated (any Actor)? = #isolation,
        _ body: () async throws -> Result
    ) async throws -> Result {
        try await acquire(timeout: timeout)
        defer { try? release() }
        return try await body()
    }

    /// Runs `body` holding one unit, blocking the thread while it waits for it, and gives the
    /// unit back afterwards.
    public func withUnitBlocking<Result, Failure: Error>(_ body: () throws(Failure) -> Result) throws(Failure)
        -> Result
    {
        _ = take(until: .never, cancellation: nil)
        defer { try? release() }
        return try body()
    }

    /// The waiting loop: takes a unit, or sleeps until a release, the deadline or cancellation.
    private func take(until deadline: WaitDeadline, cancellation: WaitCancellation?) -> LockOutcome {
        while true {
            if tryAcquire() { return .acquired }
            if cancellation?.isCancelled == true { return .cancelled }
            if deadline.hasPassed { return .timedOut }
            // Announce the sleep before the last look at the value: a release either sees the
            // sleeper or changes the value the futex compares against.
            _ = sleepers.addSequentially(1)
            if count.loadSequentially() == 0 {
                _ = count.wait(ifEqualTo: 0, until: deadline, cancellation: cancellation)
            }
            _ = sleepers.subtractSequentially(1)
        }
    }

    private func settle(_ outcome: LockOutcome) throws(SyncError) {
        switch outcome {
        case .acquired, .ownerDied: return
        case .timedOut: throw .timedOut
        case .cancelled: throw .cancelled
        }
    }

    private enum CodingKeys: String, CodingKey { case placement, limit }

    /// Encodes the shared memory (its descriptor travels with the message), the offset and the
    /// limit.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try placement.encode(to: container.superEncoder(forKey: .placement))
        try container.encodeIfPresent(limit, forKey: .limit)
    }

    /// Maps the semaphore's memory in this process.
    ///
    /// - Throws: ``SharedMemoryError/layoutMismatch(_:)`` if the memory does not hold a
    ///   semaphore with this limit.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        placement = try SharedPlacement.decode(
            "ProcessSemaphore", size: Self.layoutSize, from: container.superDecoder(forKey: .placement))
        limit = try container.decodeIfPresent(Int.self, forKey: .limit)
        let expected: UInt32? =
            switch limit {
            case nil: Self.unbounded
            case let limit? where (0...Self.maximumValue).contains(limit): UInt32(limit)
            default: nil
            }
        guard FutexWord(placement.address + 12).load() == Self.magic,
            FutexWord(placement.address + 8).load() == expected
        else {
            throw SharedMemoryError.layoutMismatch(
                "no ProcessSemaphore with limit \(limit.map(String.init) ?? "none") at offset \(placement.offset)"
            )
        }
    }
}
