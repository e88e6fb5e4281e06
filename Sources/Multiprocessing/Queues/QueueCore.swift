import CMultiprocessing
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The process-shared part of every queue type: a ring of encoded items in a shared segment,
/// one owner-death-safe lock, futex words for sleepers, and a side channel for large items.
/// It moves bytes; the generic queue types encode and decode.
final class QueueCore: @unchecked Sendable {
    let memory: SharedMemory
    let sockets: QueueSockets
    let ringBytes: Int
    /// 0: no item limit.
    let capacity: Int
    /// Encoded items up to this size go in the ring; larger ones travel as a descriptor.
    let maximumInline: Int

    /// A ``JoinableQueue``'s record of who holds which items, or `nil` for other queues.
    let holders: QueueHolders?
    /// This process's logger and metrics for the queue, when it was made here with some.
    let telemetry: QueueTelemetry?

    let base: UnsafeMutableRawPointer
    let ring: UnsafeMutableRawPointer
    private let lockWord: LockWord
    /// This process's holder slot, as last found (checked before use).
    let slotHint = Atomic<Int>(0)
    /// Gets in this process, and when the next look for dead holders is due (monotonic ns).
    let getsCounted = Atomic<UInt32>(0)
    let nextHolderCheck = Atomic<Int64>(0)

    /// How long a getter or putter spins, watching the counters, before it sleeps: long enough
    /// that a steady stream between two processes never goes through the kernel.
    static let spinNanoseconds: Int64 = 30_000
    /// The longest sleep between checks of the queue when no cancellation can interrupt.
    static let sleepSlice: Int64 = 200_000_000
    /// The longest sleep between checks of a cancellation flag.
    static let cancellationSlice: Int64 = 50_000_000
    /// Wakes in a row that find no sleeper before a registration is presumed left by a process
    /// that died asleep (and dropped, so puts stop paying for a wake-up call).
    static let fruitlessLimit: UInt32 = 64

    /// The ring size used when none is given: 4 MiB, so items up to 1 MiB go in the ring.
    static let defaultRingBytes = 4 << 20

    /// How often a waiter checks whether the processes holding items are alive (the interval a
    /// lock waiter checks its holder at).
    static let holderCheckInterval = LockWord.livenessInterval
    /// In a queue that puts items back, a get that does not wait still looks for dead holders
    /// once in this many gets (if ``holderCheckInterval`` has passed), so that their items come
    /// back while the queue is busy too.
    static let getsPerHolderCheck: UInt32 = 256

    /// A new, empty queue in its own segment; with `holding`, one that records who holds which
    /// items and treats the items of dead holders as `holding` says (``JoinableQueue``).
    static func create(
        capacity: Int?, ringBytes: Int, holding: AbandonedItemPolicy? = nil, telemetry: QueueTelemetry? = nil
    ) throws(QueueError) -> QueueCore {
        if let capacity, capacity < 1 {
            throw .invalidConfiguration("capacity \(capacity): at least 1, or nil for no limit")
        }
        guard ringBytes >= 1024, ringBytes <= 1 << 40 else {
            throw .invalidConfiguration("ring of \(ringBytes) bytes: between 1 KiB and 1 TiB")
        }
        if let holding, holding.requeues, holding.maxDeliveries < 1 || holding.maxDeliveries > Int(UInt32.max)
        {
            throw .invalidConfiguration("requeue(maxDeliveries: \(holding.maxDeliveries)): at least 1")
        }
        let ring = (ringBytes + 63) & ~63
        let area = QueueLayout.headerBytes + ring
        let areaBytes = holding.map { QueueHolders.bytes(for: $0, ringBytes: ring) } ?? 0
        let memory: SharedMemory
        do {
            memory = try SharedMemory(size: area + areaBytes)
        } catch {
            throw .memory(error)
        }
        let base = memory.baseAddress
        if let holding {
            QueueHolders.format(base: base, area: area, policy: holding, ringBytes: ring)
            SharedWord64(base + QueueLayout.holdersArea).store(UInt64(area))
        }
        SharedWord64(base + QueueLayout.ringBytes).store(UInt64(ring))
        SharedWord64(base + QueueLayout.capacity).store(UInt64(capacity ?? 0))
        SharedWord64(base + QueueLayout.maximumInline).store(UInt64(ring / 4))
        SharedWord64(base + QueueLayout.magic).store(QueueLayout.magicValue)
        return try QueueCore(memory: memory, sockets: QueueSockets(), telemetry: telemetry)
    }

    /// Attaches to the queue in `memory` (a handle that arrived from another process).
    init(memory: SharedMemory, sockets: QueueSockets, telemetry: QueueTelemetry? = nil) throws(QueueError) {
        let base = memory.baseAddress
        guard memory.size > QueueLayout.headerBytes,
            SharedWord64(base + QueueLayout.magic).load() == QueueLayout.magicValue
        else {
            throw .corrupted("the segment does not hold a queue")
        }
        let ring = Int(clamping: SharedWord64(base + QueueLayout.ringBytes).load())
        let capacity = Int(clamping: SharedWord64(base + QueueLayout.capacity).load())
        let inline = Int(clamping: SharedWord64(base + QueueLayout.maximumInline).load())
        guard ring >= 1024, ring % 64 == 0, ring <= memory.size - QueueLayout.headerBytes,
            inline > 0, inline <= ring / 4, capacity >= 0
        else {
            throw .corrupted("ring of \(ring) bytes in a segment of \(memory.size)")
        }
        let area = SharedWord64(base + QueueLayout.holdersArea).load()
        if area == 0 {
            holders = nil
        } else {
            guard area >= UInt64(QueueLayout.headerBytes + ring), area < UInt64(memory.size) else {
                throw .corrupted("a holder record at \(area) after a ring of \(ring) bytes")
            }
            holders = try QueueHolders(base: base, area: Int(area), segmentBytes: memory.size)
        }
        self.memory = memory
        self.sockets = sockets
        self.ringBytes = ring
        self.capacity = capacity
        self.maximumInline = inline
        self.base = base
        self.ring = base + QueueLayout.headerBytes
        self.lockWord = LockWord(base + QueueLayout.lock)
        self.telemetry = telemetry
    }

    // MARK: - Fields

    @inline(__always) func word(_ offset: Int) -> FutexWord { FutexWord(base + offset) }

    var notEmptySequence: FutexWord { word(QueueLayout.notEmptySequence) }
    var notFullSequence: FutexWord { word(QueueLayout.notFullSequence) }
    var joinSequence: FutexWord { word(QueueLayout.joinSequence) }

    /// The state as committed (read it under the lock for an exact value).
    var state: QueueState { QueueState(at: base + QueueLayout.state) }

    var putCountWord: SharedWord64 { SharedWord64(base + QueueLayout.state + 16) }
    var getCountWord: SharedWord64 { SharedWord64(base + QueueLayout.state + 24) }
    var unfinishedWord: SharedWord64 { SharedWord64(base + QueueLayout.state + 32) }

    var isClosed: Bool { word(QueueLayout.closed).load() != 0 }

    /// Items in the queue now (a snapshot, exact only when nothing else runs), counting those
    /// put back from dead holders.
    var approximateCount: Int {
        let got = getCountWord.load()
        let inRing = Int(clamping: putCountWord.load() &- got)
        guard let holders else { return inRing }
        return inRing + holders.requeuedCount
    }

    /// Items put and not yet marked done (a snapshot).
    var unfinished: Int { Int(clamping: unfinishedWord.load()) }

    /// Locks taken over from a process that died holding them.
    var recoveries: Int { Int(word(QueueLayout.recoveries).load()) }

    /// Getters registered to sleep (a snapshot).
    var sleepersRegistered: Int { Int(word(QueueLayout.notEmptyWaiters).load()) }

    /// Large items dropped because their descriptor never arrived.
    var skippedItems: Int { Int(clamping: SharedWord64(base + QueueLayout.skippedItems).load()) }

    // MARK: - Lock and commit

    @inline(__always) func lock() {
        if case .ownerDied(let holder) = lockWord.lock(until: .never) { recover(from: holder) }
    }

    /// Takes the lock, or (for a wait that may not wait for it) only if that needs no sleep.
    @inline(__always) func lock(_ wait: QueueWait) -> Bool {
        if wait.mayWaitForLock {
            lock()
            return true
        }
        guard let outcome = lockWord.tryLock() ?? lockWord.spin() else { return false }
        if case .ownerDied(let holder) = outcome { recover(from: holder) }
        return true
    }

    @inline(__always) func unlock() { lockWord.unlock() }

    /// Finishes what a holder killed in the middle of a commit started.
    private func recover(from holder: Int32) {
        _ = word(QueueLayout.recoveries).add(1)
        telemetry.lockRecovered(holder: holder)
        let valid = word(QueueLayout.journalValid)
        let mark = valid.load()
        if mark != 0 {
            QueueState(at: base + QueueLayout.journal).store(at: base + QueueLayout.state)
            if mark == 2 { holders?.replayJournal() }
            valid.store(0)
        }
    }

    /// Replaces the state so that a process killed at any point leaves the old or the new one:
    /// journal, mark, `between` (an effect outside the segment that belongs to this change),
    /// apply, unmark.
    @inline(__always) func commit(_ new: QueueState, between: () -> Void = {}) {
        let valid = word(QueueLayout.journalValid)
        new.store(at: base + QueueLayout.journal)
        valid.store(1)
        between()
        new.store(at: base + QueueLayout.state)
        valid.store(0)
    }

    /// ``commit(_:between:)`` with the holder record's `writes` (journal mark 2).
    func commit(_ new: QueueState, _ writes: JournalWrites, between: () -> Void = {}) {
        let valid = word(QueueLayout.journalValid)
        new.store(at: base + QueueLayout.journal)
        writes.seal()
        valid.store(2)
        between()
        new.store(at: base + QueueLayout.state)
        writes.apply()
        valid.store(0)
    }
}
