/// A flag shared between processes that tasks can wait for (CPython's `multiprocessing.Event`).
///
/// ``set()`` raises the flag and wakes every waiter, in every process; ``clear()`` lowers it;
/// ``wait(timeout:)`` returns at once while the flag is up and otherwise sleeps in the kernel
/// until someone sets it (the `async` form never holds one of Swift's cooperative threads).
///
/// A waiter that was asleep when the flag was set returns `true` even if the flag was cleared
/// again before it woke (like CPython's `threading.Event`): a quick set-and-clear pulse is not
/// lost.
///
/// Pass it to a child as a stored property of the task, or in a message over a channel.
///
/// ```swift
/// let ready = try ProcessEvent()
/// // in a child:   ready.set()
/// let isReady = try await ready.wait(timeout: .seconds(5))
/// ```
public final class ProcessEvent: Sendable, Codable {
    // Layout: [state: UInt32, the flag in bit 0 and a count of sets above it][sleepers: UInt32]
    //         [magic: UInt32][unused: UInt32].
    static let layoutSize = 16
    static let magic: UInt32 = 0x4556_5431  // "EVT1"

    let placement: SharedPlacement
    /// This process's async waiters: one at a time sleeps in the kernel.
    private let waiters = HandoffLock()

    /// A new event, initially not set.
    public init() throws(SyncError) {
        placement = try .fresh(size: Self.layoutSize)
        FutexWord(placement.address + 8).store(Self.magic)
    }

    private init(placement: SharedPlacement) { self.placement = placement }

    private var state: FutexWord { FutexWord(placement.address) }
    private var sleepers: FutexWord { FutexWord(placement.address + 4) }

    /// Whether the flag is up now (a snapshot).
    public var isSet: Bool { state.load() & 1 != 0 }

    /// Raises the flag and wakes every waiter. Setting a set event does nothing.
    public func set() {
        var current = state.load()
        while current & 1 == 0 {
            // A new state value (the count of sets goes up) wakes sleepers that compare with
            // the old one, even if it is cleared again before they look.
            let (exchanged, found) = state.compareExchangeSequentially(current, (current &+ 2) | 1)
            if exchanged {
                if sleepers.loadSequentially() > 0 { state.wakeAll() }
                return
            }
            current = found
        }
    }

    /// Lowers the flag. Waiters sleep until the next ``set()``.
    public func clear() {
        var current = state.load()
        while current & 1 != 0 {
            let (exchanged, found) = state.compareExchange(current, current & ~1)
            if exchanged { return }
            current = found
        }
    }

    /// Waits until the flag is set, up to `timeout` (forever if `nil`), without blocking a
    /// cooperative thread.
    ///
    /// - Returns: `true` if the flag was set (now, or while waiting); `false` on timeout.
    /// - Throws: ``SyncError/cancelled`` when the waiting task is cancelled.
    @discardableResult
    public func wait(timeout: Duration? = nil) async throws(SyncError) -> Bool {
        let start = state.load()
        if start & 1 != 0 { return true }
        if Task.isCancelled { throw .cancelled }
        let deadline = WaitDeadline(after: timeout)
        let outcome = await WaitThreads.run(
            through: waiters, until: deadline,
            { [self] cancellation in sleep(from: start, until: deadline, cancellation: cancellation) },
            wake: { [self] in state.wakeAll() },
            ready: { state.load() != start ? .acquired : nil },
            gaveUp: { cancelled in cancelled ? .cancelled : state.load() != start ? .acquired : .timedOut })
        if outcome == .cancelled { throw .cancelled }
        return outcome == .acquired
    }

    /// Waits until the flag is set, blocking the calling thread up to `timeout` (forever if
    /// `nil`).
    ///
    /// - Returns: `true` if the flag was set (now, or while waiting); `false` on timeout.
    @discardableResult
    public func waitBlocking(timeout: Duration? = nil) -> Bool {
        let start = state.load()
        if start & 1 != 0 { return true }
        return sleep(from: start, until: WaitDeadline(after: timeout), cancellation: nil) == .acquired
    }

    /// Sleeps while the state stays `start` (flag down, no set since).
    private func sleep(from start: UInt32, until deadline: WaitDeadline, cancellation: WaitCancellation?)
        -> LockOutcome
    {
        while true {
            _ = sleepers.addSequentially(1)
            let current = state.loadSequentially()
            if current == start {
                _ = state.wait(ifEqualTo: start, until: deadline, cancellation: cancellation)
            }
            _ = sleepers.subtractSequentially(1)
            // Any change from a lowered flag is a set (clearing a lowered flag changes nothing).
            if state.load() != start { return .acquired }
            if cancellation?.isCancelled == true { return .cancelled }
            if deadline.hasPassed { return .timedOut }
        }
    }

    private enum CodingKeys: String, CodingKey { case placement }

    /// Encodes the shared memory (its descriptor travels with the message) and the offset.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try placement.encode(to: container.superEncoder(forKey: .placement))
    }

    /// Maps the event's memory in this process.
    ///
    /// - Throws: ``SharedMemoryError/layoutMismatch(_:)`` if the memory does not hold an event.
    public convenience init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let placement = try SharedPlacement.decode(
            "ProcessEvent", size: Self.layoutSize, from: container.superDecoder(forKey: .placement))
        guard FutexWord(placement.address + 8).load() == Self.magic else {
            throw SharedMemoryError.layoutMismatch("no ProcessEvent at offset \(placement.offset)")
        }
        self.init(placement: placement)
    }
}
