/// A barrier shared between processes (CPython's `multiprocessing.Barrier`): a fixed number of
/// parties each call ``wait(timeout:)``, and none returns until all have arrived. Then the
/// barrier is ready for the next round (a new *generation*), as many times as needed.
///
/// Each party's wait returns its arrival index in the generation, `0..<parties` (the last to
/// arrive gets `parties - 1`), handy for choosing one party to do some extra work.
///
/// **Breaking.** If a party's wait times out or its task is cancelled, if ``abort()`` or
/// ``reset()`` is called, or if the action throws, the barrier *breaks*: every party waiting
/// gets ``SyncError/brokenBarrier`` (the one whose task was cancelled gets
/// ``SyncError/cancelled``, the one whose action threw gets that error), and so does any later
/// wait until ``reset()``.
///
/// **Dead parties.** A party that dies before arriving simply never arrives: the others wait
/// until their timeout, which breaks the barrier (so give waits a timeout when a party may
/// die). A party that dies *inside* a wait stays counted: its generation can still be released,
/// but it never leaves, so later waits end with ``SyncError/timedOut`` (or never, without a
/// timeout), and ``reset()`` cannot mend that. Use a new barrier then.
///
/// **The action.** A closure cannot travel to another process, so the optional action belongs
/// to a handle, not to the shared barrier. When the last party of a generation arrives, it runs
/// *its own handle's* action, in its own process, before anyone is released; the other parties
/// never run theirs. A handle decoded in another process has no action; give it one with
/// ``init(sharing:action:)``. If every handle has an action, exactly one runs per generation.
/// In the `async` form the action runs on a helper thread, not in the calling task.
///
/// Waiters sleep in the kernel and, in the `async` forms, never hold one of Swift's cooperative
/// threads. Pass the barrier to a child as a stored property of the task, or in a message over
/// a channel.
///
/// ```swift
/// let barrier = try ProcessBarrier(parties: 3)
/// // in each of three processes, once per step:
/// let index = try await barrier.wait(timeout: .seconds(30))
/// ```
public final class ProcessBarrier: Sendable, Codable {
    // Layout: [lock word: UInt32][unused: UInt32][condition sequence: 16 bytes][parties: UInt32]
    //         [arrived and not yet left: UInt32][phase: UInt32][magic: UInt32].
    static let layoutSize = 40
    static let magic: UInt32 = 0x4241_5231  // "BAR1"

    /// What the barrier is doing; `draining` and `resetting` hold back new arrivals until the
    /// parties of the last generation have left.
    private enum Phase: UInt32 {
        case filling = 0
        case draining = 1
        case resetting = 2
        case broken = 3
    }

    let placement: SharedPlacement
    private let word: LockWord
    private let sequence: ConditionSequence
    /// This handle's async waiters: one thread sleeps for all of them.
    private let watch: SequenceWatch
    /// Serializes the locked steps of this handle's async waits.
    private let steps = HandoffLock()

    /// How many parties must call ``wait(timeout:)`` to release a generation.
    public let parties: Int

    /// The timeout a ``wait(timeout:)`` without one uses (`nil`: none). It belongs to this
    /// handle and travels with it.
    public let timeout: Duration?

    /// The closure the last party to arrive runs, if it arrives through this handle.
    let action: (@Sendable () throws -> Void)?

    /// A barrier for `parties` parties, in its own shared memory.
    ///
    /// - Parameters:
    ///   - parties: how many waits release a generation, `1...Int32.max`.
    ///   - timeout: the timeout of a ``wait(timeout:)`` that names none (`nil`: wait forever).
    ///   - action: run once per generation, when the last party arrives through this handle,
    ///     before the others are released; if it throws, the barrier breaks and that party's
    ///     wait throws the error.
    public convenience init(
        parties: Int, timeout: Duration? = nil, action: (@Sendable () throws -> Void)? = nil
    ) throws(SyncError) {
        precondition(parties >= 1 && parties <= Int(Int32.max), "ProcessBarrier needs 1...Int32.max parties")
        let placement = try SharedPlacement.fresh(size: Self.layoutSize)
        FutexWord(placement.address + 24).store(UInt32(parties))
        FutexWord(placement.address + 36).store(Self.magic)
        self.init(
            placement: placement, parties: parties, timeout: timeout, action: action,
            sequence: .formatted(SharedPlacement(memory: placement.memory, offset: 8)))
    }

    /// Another handle to `barrier`'s shared barrier, with an action of its own: typically in a
    /// child, where the handle it received has none.
    public convenience init(sharing barrier: ProcessBarrier, action: (@Sendable () throws -> Void)?) {
        self.init(
            placement: barrier.placement, parties: barrier.parties, timeout: barrier.timeout,
            action: action, sequence: barrier.sequence)
    }

    private init(
        placement: SharedPlacement, parties: Int, timeout: Duration?, action: (@Sendable () throws -> Void)?,
        sequence: ConditionSequence
    ) {
        self.placement = placement
        self.word = LockWord(placement.address)
        self.sequence = sequence
        self.watch = SequenceWatch(sequence, counted: false)
        self.parties = parties
        self.timeout = timeout
        self.action = action
    }

    private var arrived: FutexWord { FutexWord(placement.address + 28) }
    private var phaseWord: FutexWord { FutexWord(placement.address + 32) }

    private var phase: Phase {
        get { Phase(rawValue: phaseWord.load()) ?? .broken }
        set { phaseWord.store(newValue.rawValue) }
    }

    /// Arrives and waits for the other parties, up to `timeout` (or the barrier's
    /// ``timeout`` when `nil`), without blocking a cooperative thread.
    ///
    /// - Returns: this party's arrival index, `0..<parties`.
    /// - Throws: ``SyncError/brokenBarrier`` if the barrier is or becomes broken, including by
    ///   this wait timing out; ``SyncError/cancelled`` if the task was cancelled (which breaks
    ///   the barrier if this party had arrived); ``SyncError/timedOut`` if the timeout passed
    ///   before this party could even arrive (the previous generation was still leaving; the
    ///   barrier is not broken then); the action's error if it ran here and threw.
    @discardableResult
    public func wait(timeout: Duration? = nil) async throws -> Int {
        if Task.isCancelled { throw SyncError.cancelled }
        let deadline = WaitDeadline(after: timeout ?? self.timeout)
        // The steps that take the barrier's lock (and may run the action) run one at a time on
        // a helper thread; the sleeping between them is shared by every waiting task of this
        // process (one thread watches the sequence). Arrivals never queue behind a sleeper.
        var next = await step { [self] in arrive() }
        while case .sleep(let start, let stage) = next {
            let outcome = await watch.wait(from: start, until: deadline)
            next = await step { [self] in afterWake(stage, outcome, deadline) }
        }
        guard case .done(let result) = next else { fatalError("unreachable") }
        return try result.get()
    }

    /// Arrives and waits for the other parties, blocking the calling thread up to `timeout` (or
    /// the barrier's ``timeout`` when `nil`).
    ///
    /// - Returns: this party's arrival index, `0..<parties`.
    /// - Throws: as ``wait(timeout:)``.
    @discardableResult
    public func waitBlocking(timeout: Duration? = nil) throws -> Int {
        try pass(until: WaitDeadline(after: timeout ?? self.timeout), cancellation: nil).get()
    }

    /// Breaks the barrier: every party waiting and every later wait get
    /// ``SyncError/brokenBarrier`` until ``reset()``.
    public func abort() {
        lockBriefly()
        defer { word.unlock() }
        breakLocked()
    }

    /// Returns the barrier to its empty state for a new generation. Parties waiting now get
    /// ``SyncError/brokenBarrier``; the barrier is usable again as soon as they have left.
    /// Also mends a broken barrier.
    public func reset() {
        lockBriefly()
        defer { word.unlock() }
        if arrived.load() > 0 {
            // Parties still inside: they leave broken, and the last one out reopens the barrier.
            if phase == .filling || phase == .broken { phase = .resetting }
        } else {
            phase = .filling
        }
        sequence.notify(Int32.max)
    }

    /// Whether the barrier is broken (a snapshot).
    public var isBroken: Bool { phase == .broken }

    /// How many parties are waiting in the current generation (a snapshot).
    public var waitingCount: Int {
        lockBriefly()
        defer { word.unlock() }
        return phase == .filling ? Int(arrived.load()) : 0
    }

    // MARK: Internals

    /// Takes the barrier's own lock, held only for a few instructions at a time (a dead
    /// holder's lock is taken over).
    private func lockBriefly() { _ = word.lock(until: .never) }

    /// Where a wait is: done, or asleep (having entered the sequence's sleepers at `start`).
    private enum Progress: Sendable {
        case done(Result<Int, any Error>)
        case sleep(start: UInt32, stage: Stage)
    }

    private enum Stage: Sendable {
        /// The previous generation (or a reset) is still leaving.
        case beforeArrival
        /// Arrived as party `index`, waiting for the others.
        case arrived(index: Int)
    }

    /// Runs `body` on a helper thread, one step of this handle's async waits at a time; never
    /// ends early (a step leaves the barrier's state consistent).
    private func step(_ body: @escaping @Sendable () -> Progress) async -> Progress {
        await steps.lockUncancellable()
        defer { steps.unlock() }
        return await WaitThreads.run({ _ in body() }, wake: {})
    }

    /// The whole of a blocking wait.
    private func pass(until deadline: WaitDeadline, cancellation: WaitCancellation?) -> Result<Int, any Error>
    {
        var next = arrive()
        while case .sleep(let start, let stage) = next {
            let outcome = sequence.sleep(
                from: start, until: deadline, cancellation: cancellation, counted: false)
            next = afterWake(stage, outcome, deadline)
        }
        guard case .done(let result) = next else { fatalError("unreachable") }
        return result
    }

    /// Arrives, unless the previous generation is still leaving (then sleeps first).
    private func arrive() -> Progress {
        lockBriefly()
        defer { word.unlock() }
        return arriveLocked()
    }

    /// The lock is held.
    private func arriveLocked() -> Progress {
        // Let the previous generation (or a reset) finish leaving.
        if phase == .draining || phase == .resetting { return sleep(.beforeArrival) }
        if phase == .broken { return .done(.failure(SyncError.brokenBarrier)) }

        let index = Int(arrived.load())
        arrived.store(UInt32(index + 1))
        if index + 1 == parties {
            defer { leave() }
            if let action {
                do {
                    try action()
                } catch {
                    breakLocked()
                    return .done(.failure(error))
                }
            }
            phase = .draining
            sequence.notify(Int32.max)
            return .done(.success(index))
        }
        return sleep(.arrived(index: index))
    }

    /// Enters the sequence's sleepers (lock held; the caller then releases it).
    private func sleep(_ stage: Stage) -> Progress { .sleep(start: sequence.enter(), stage: stage) }

    /// Takes the lock back after a sleep that ended with `outcome`, and goes on.
    private func afterWake(_ stage: Stage, _ outcome: LockOutcome, _ deadline: WaitDeadline) -> Progress {
        sequence.leave()
        lockBriefly()
        defer { word.unlock() }
        switch stage {
        case .beforeArrival:
            if phase != .draining && phase != .resetting { return arriveLocked() }
            if outcome == .cancelled { return .done(.failure(SyncError.cancelled)) }
            if outcome == .timedOut { return .done(.failure(SyncError.timedOut)) }
            return sleep(.beforeArrival)
        case .arrived(let index):
            if phase == .filling {
                if outcome == .cancelled {
                    breakLocked()
                    leave()
                    return .done(.failure(SyncError.cancelled))
                }
                if outcome == .timedOut {
                    breakLocked()
                    leave()
                    return .done(.failure(SyncError.brokenBarrier))
                }
                return sleep(stage)
            }
            defer { leave() }
            return .done(phase == .draining ? .success(index) : .failure(SyncError.brokenBarrier))
        }
    }

    /// A party leaves (lock held); the last one out of a released or reset generation opens the
    /// barrier for the next.
    private func leave() {
        let remaining = arrived.load() - 1
        arrived.store(remaining)
        if remaining == 0, phase == .draining || phase == .resetting {
            phase = .filling
            sequence.notify(Int32.max)
        }
    }

    private func breakLocked() {
        phase = .broken
        sequence.notify(Int32.max)
    }

    private enum CodingKeys: String, CodingKey { case placement, parties, timeout }

    /// Encodes the shared memory (its descriptor travels with the message), the offset, the
    /// number of parties and the default timeout. The action stays behind.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try placement.encode(to: container.superEncoder(forKey: .placement))
        try container.encode(parties, forKey: .parties)
        try container.encodeIfPresent(timeout, forKey: .timeout)
    }

    /// Maps the barrier's memory in this process. The handle has no action.
    ///
    /// - Throws: ``SharedMemoryError/layoutMismatch(_:)`` if the memory does not hold a
    ///   barrier for this many parties.
    public convenience init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let placement = try SharedPlacement.decode(
            "ProcessBarrier", size: Self.layoutSize, from: container.superDecoder(forKey: .placement))
        let parties = try container.decode(Int.self, forKey: .parties)
        let timeout = try container.decodeIfPresent(Duration.self, forKey: .timeout)
        guard FutexWord(placement.address + 36).load() == Self.magic, parties >= 1,
            Int(FutexWord(placement.address + 24).load()) == parties,
            FutexWord(placement.address + 16).load() == ConditionSequence.magic
        else {
            throw SharedMemoryError.layoutMismatch(
                "no ProcessBarrier for \(parties) parties at offset \(placement.offset)")
        }
        self.init(
            placement: placement, parties: parties, timeout: timeout, action: nil,
            sequence: ConditionSequence(placement: SharedPlacement(memory: placement.memory, offset: 8)))
    }
}
