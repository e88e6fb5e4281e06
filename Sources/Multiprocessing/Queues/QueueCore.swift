import CMultiprocessing
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// How long a queue operation may wait for an item or for room.
struct QueueWait: Sendable {
    /// `false`: report ``QueueError/full`` or ``QueueError/empty`` at once.
    var mayWait: Bool
    var deadline: WaitDeadline
    var cancellation: WaitCancellation?
    /// `false`: not even for the queue's own lock (held briefly, but by a process that may be
    /// decoding a large item, or dead): report ``QueueError/full`` or ``QueueError/empty`` as if
    /// the operation had to wait. For an `async` caller's first attempt, on a cooperative thread.
    var mayWaitForLock = true

    /// The non-waiting forms.
    static let immediately = QueueWait(mayWait: false, deadline: .never, cancellation: nil)

    /// An attempt that never sleeps, not even for the lock; the caller waits elsewhere if it fails.
    static let attempt = QueueWait(mayWait: false, deadline: .never, cancellation: nil, mayWaitForLock: false)

    /// Waits until `deadline`, checking `cancellation` as it goes.
    static func until(_ deadline: WaitDeadline, _ cancellation: WaitCancellation? = nil) -> QueueWait {
        QueueWait(mayWait: true, deadline: deadline, cancellation: cancellation)
    }
}

/// An encoded item ready to go in: its bytes, or (for an item larger than the ring takes) the
/// anonymous memory that holds them.
struct OutgoingItem: Sendable {
    /// The encoded item, when it goes in the ring.
    let bytes: [UInt8]
    /// The memfd holding the encoded item, or -1 for an item that goes in the ring.
    let descriptor: Int32
    /// The encoded item's byte count.
    let length: Int

    /// Closes the large item's memory (the consumer has its own descriptor by now).
    func release() {
        if descriptor >= 0 { systemClose(descriptor) }
    }
}

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

    private let base: UnsafeMutableRawPointer
    private let ring: UnsafeMutableRawPointer
    private let lockWord: LockWord
    /// This process's holder slot, as last found (checked before use).
    private let slotHint = Atomic<Int>(0)
    /// Gets in this process, and when the next look for dead holders is due (monotonic ns).
    private let getsCounted = Atomic<UInt32>(0)
    private let nextHolderCheck = Atomic<Int64>(0)

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
    static func create(capacity: Int?, ringBytes: Int, holding: AbandonedItemPolicy? = nil)
        throws(QueueError) -> QueueCore
    {
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
        return try QueueCore(memory: memory, sockets: QueueSockets())
    }

    /// Attaches to the queue in `memory` (a handle that arrived from another process).
    init(memory: SharedMemory, sockets: QueueSockets) throws(QueueError) {
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
    }

    // MARK: - Fields

    @inline(__always) private func word(_ offset: Int) -> FutexWord { FutexWord(base + offset) }

    private var notEmptySequence: FutexWord { word(QueueLayout.notEmptySequence) }
    private var notFullSequence: FutexWord { word(QueueLayout.notFullSequence) }
    private var joinSequence: FutexWord { word(QueueLayout.joinSequence) }

    /// The state as committed (read it under the lock for an exact value).
    private var state: QueueState { QueueState(at: base + QueueLayout.state) }

    private var putCountWord: SharedWord64 { SharedWord64(base + QueueLayout.state + 16) }
    private var getCountWord: SharedWord64 { SharedWord64(base + QueueLayout.state + 24) }
    private var unfinishedWord: SharedWord64 { SharedWord64(base + QueueLayout.state + 32) }

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

    @inline(__always) private func lock() {
        if case .ownerDied = lockWord.lock(until: .never) { recover() }
    }

    /// Takes the lock, or (for a wait that may not wait for it) only if that needs no sleep.
    @inline(__always) private func lock(_ wait: QueueWait) -> Bool {
        if wait.mayWaitForLock {
            lock()
            return true
        }
        guard let outcome = lockWord.tryLock() ?? lockWord.spin() else { return false }
        if case .ownerDied = outcome { recover() }
        return true
    }

    @inline(__always) private func unlock() { lockWord.unlock() }

    /// Finishes what a holder killed in the middle of a commit started.
    private func recover() {
        _ = word(QueueLayout.recoveries).add(1)
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
    @inline(__always) private func commit(_ new: QueueState, between: () -> Void = {}) {
        let valid = word(QueueLayout.journalValid)
        new.store(at: base + QueueLayout.journal)
        valid.store(1)
        between()
        new.store(at: base + QueueLayout.state)
        valid.store(0)
    }

    /// ``commit(_:between:)`` with the holder record's `writes` (journal mark 2).
    private func commit(_ new: QueueState, _ writes: JournalWrites, between: () -> Void = {}) {
        let valid = word(QueueLayout.journalValid)
        new.store(at: base + QueueLayout.journal)
        writes.seal()
        valid.store(2)
        between()
        new.store(at: base + QueueLayout.state)
        writes.apply()
        valid.store(0)
    }

    // MARK: - Put

    /// Prepares encoded `bytes` for ``put(_:_:)``: an item too large for the ring moves into
    /// anonymous memory of its own first (outside the lock).
    func prepare(_ bytes: [UInt8]) throws(QueueError) -> OutgoingItem {
        guard bytes.count > maximumInline else {
            return OutgoingItem(bytes: bytes, descriptor: -1, length: bytes.count)
        }
        let prepared = bytes.withUnsafeBytes { bytes in
            Result { () throws(QueueError) in try prepare(UnsafeRawBufferPointer(start: nil, count: 0), bytes)
            }
        }
        return try prepared.get()
    }

    /// Prepares an item encoded in two parts (a prefix and a body): in the ring's form if it is
    /// small, otherwise in anonymous memory of its own, written with one copy.
    func prepare(_ head: UnsafeRawBufferPointer, _ body: UnsafeRawBufferPointer) throws(QueueError)
        -> OutgoingItem
    {
        let length = head.count + body.count
        guard length > maximumInline else {
            return OutgoingItem(bytes: Array(head) + Array(body), descriptor: -1, length: length)
        }
        let fd = mp_memfd_create("swift-multiprocessing-queue-item", UInt64(length))
        guard fd >= 0 else { throw .system(SystemError("memfd_create")) }
        do {
            try Self.write(head, to: fd, at: 0)
            try Self.write(body, to: fd, at: head.count)
        } catch {
            systemClose(fd)
            throw error
        }
        return OutgoingItem(bytes: [], descriptor: fd, length: length)
    }

    private static func write(_ bytes: UnsafeRawBufferPointer, to fd: Int32, at offset: Int)
        throws(QueueError)
    {
        var written = 0
        while written < bytes.count {
            let n = pwrite(fd, bytes.baseAddress! + written, bytes.count - written, off_t(offset + written))
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw .system(SystemError("pwrite")) }
            written += n
        }
    }

    /// Puts an encoded item, waiting for room as `wait` allows: `head` then `body` go in the
    /// ring, or (with a `descriptor` from ``prepare(_:_:)``) the descriptor of `length` bytes goes
    /// to the consumer.
    func put(
        _ head: UnsafeRawBufferPointer, _ body: UnsafeRawBufferPointer, descriptor: Int32 = -1,
        length: Int, _ wait: QueueWait
    ) throws(QueueError) {
        var spun = false
        var registered = false
        let waiters = word(QueueLayout.notFullWaiters)
        while true {
            guard lock(wait) else { throw .full }
            if registered {
                Self.unregister(waiters)
                registered = false
            }
            if isClosed {
                unlock()
                throw .closed
            }
            let current = state
            let appended: Bool
            do {
                appended = try append(head, body, descriptor: descriptor, length: length, to: current)
            } catch {
                unlock()
                throw error
            }
            if appended {
                let wake = signal(
                    QueueLayout.notEmptyWaiters, notEmptySequence, QueueLayout.fruitlessWakes)
                unlock()
                if wake { wakeSleepers(notEmptySequence, all: false, QueueLayout.fruitlessWakes) }
                return
            }
            try waitForOtherSide(
                wait, unavailable: .full, progress: getCountWord, seen: current.getCount,
                sequence: notFullSequence, waiters: waiters, spun: &spun, registered: &registered)
        }
    }

    /// Puts a prepared item (see ``put(_:_:descriptor:length:_:)``).
    func put(_ item: OutgoingItem, _ wait: QueueWait) throws(QueueError) {
        let result = item.bytes.withUnsafeBytes { bytes in
            Result { () throws(QueueError) in
                try put(
                    UnsafeRawBufferPointer(start: nil, count: 0), bytes, descriptor: item.descriptor,
                    length: item.length, wait)
            }
        }
        try result.get()
    }

    /// Writes the item's record after `current` and commits; `false` if it does not fit.
    private func append(
        _ head: UnsafeRawBufferPointer, _ body: UnsafeRawBufferPointer, descriptor: Int32, length: Int,
        to current: QueueState
    ) throws(QueueError) -> Bool {
        if capacity > 0 && current.count >= UInt64(capacity) { return false }
        let large = descriptor >= 0
        let payload = large ? QueueLayout.largePayload : head.count + body.count
        let record = QueueLayout.recordSize(payload: payload)
        var offset = Int(current.writePosition % UInt64(ringBytes))
        let padding = offset + record > ringBytes ? ringBytes - offset : 0
        if current.usedBytes + UInt64(padding + record) > UInt64(ringBytes) { return false }
        if large {
            // Number the item before sending it, so that a producer killed after the send never
            // leaves two messages with one number.
            let numberWord = SharedWord64(base + QueueLayout.nextLargeSequence)
            let number = numberWord.load()
            numberWord.store(number &+ 1)
            let outcome = try sockets.send(sequence: number, length: UInt64(length), descriptor: descriptor)
            if outcome == .full { return false }
            if padding > 0 {
                writeHeader(
                    at: offset, length: padding - QueueLayout.recordHeader, kind: QueueLayout.wrapKind)
                offset = 0
            }
            writeHeader(at: offset, length: payload, kind: QueueLayout.largeKind)
            SharedWord64(ring + offset + 8).store(number)
            SharedWord64(ring + offset + 16).store(UInt64(length))
        } else {
            if padding > 0 {
                writeHeader(
                    at: offset, length: padding - QueueLayout.recordHeader, kind: QueueLayout.wrapKind)
                offset = 0
            }
            writeHeader(at: offset, length: payload, kind: QueueLayout.inlineKind)
            let destination = ring + offset + QueueLayout.recordHeader
            if let source = head.baseAddress { destination.copyMemory(from: source, byteCount: head.count) }
            if let source = body.baseAddress {
                (destination + head.count).copyMemory(from: source, byteCount: body.count)
            }
        }
        var next = current
        next.writePosition &+= UInt64(padding + record)
        next.putCount &+= 1
        next.unfinished &+= 1
        commit(next)
        return true
    }

    @inline(__always) private func writeHeader(at offset: Int, length: Int, kind: UInt32) {
        let header = (ring + offset).assumingMemoryBound(to: UInt32.self)
        header[0] = UInt32(length)
        header[1] = kind
    }

    // MARK: - Get

    /// Items up to this size are copied out under the lock and decoded after it is released;
    /// larger ones are decoded in place, under the lock, to save a copy.
    static let copyOutLimit = 1024

    /// Takes the oldest item and decodes it with `decode`. The take is committed only once the
    /// item's bytes have been copied out (or decoded in place): a consumer killed at any point
    /// before leaves the item in the queue.
    func get<T>(_ wait: QueueWait, _ decode: (UnsafeRawBufferPointer) throws(CodecError) -> T)
        throws(QueueError) -> T
    {
        try withUnsafeTemporaryAllocation(byteCount: Self.copyOutLimit, alignment: 16) {
            scratch throws(QueueError) -> T in
            if let holders {
                return try getHeld(holders, wait, decode, scratch: scratch)
            }
            return try get(wait, decode, scratch: scratch)
        }
    }

    private func get<T>(
        _ wait: QueueWait, _ decode: (UnsafeRawBufferPointer) throws(CodecError) -> T,
        scratch: UnsafeMutableRawBufferPointer
    ) throws(QueueError) -> T {
        var spun = false
        var registered = false
        let waiters = word(QueueLayout.notEmptyWaiters)
        while true {
            guard lock(wait) else { throw .empty }
            if registered {
                Self.unregister(waiters)
                registered = false
            }
            var current = state
            if current.count > 0 {
                let found: Found
                do {
                    found = try take(&current, scratch: scratch)
                } catch {
                    unlock()
                    throw error
                }
                switch found {
                case .copied(let count, let next):
                    commit(next)
                    finishTake()
                    do {
                        return try decode(UnsafeRawBufferPointer(rebasing: scratch[..<count]))
                    } catch {
                        forgetUndecodable()
                        throw .codec(error)
                    }
                case .inRing(let bytes, var next):
                    // Decoded in place, under the lock, then committed.
                    let value: T
                    do {
                        value = try decode(bytes)
                    } catch {
                        next.unfinished = next.unfinished == 0 ? 0 : next.unfinished - 1
                        commit(next)
                        finishTake()
                        throw .codec(error)
                    }
                    commit(next)
                    finishTake()
                    return value
                case .mapped(let message, var next):
                    let value: T
                    do {
                        value = try mapAndDecode(message.descriptor, size: message.length, decode)
                    } catch {
                        next.unfinished = next.unfinished == 0 ? 0 : next.unfinished - 1
                        systemClose(message.descriptor)
                        commit(next, between: { sockets.discard() })
                        finishTake()
                        throw error
                    }
                    systemClose(message.descriptor)
                    commit(next, between: { sockets.discard() })
                    finishTake()
                    return value
                case .skipped:
                    finishTake()
                    continue
                }
            }
            if isClosed {
                unlock()
                throw .closed
            }
            try waitForOtherSide(
                wait, unavailable: .empty, progress: putCountWord, seen: current.putCount,
                sequence: notEmptySequence, waiters: waiters, spun: &spun, registered: &registered)
        }
    }

    /// ``get(_:_:scratch:)`` for a ``JoinableQueue``: the take and the record that this process
    /// holds the item (with its bytes, when the queue puts items back) are one commit; items put
    /// back from dead holders are served before the ring; and a waiter in a queue that puts items
    /// back looks for dead holders every ``holderCheckInterval``, so that their items come back
    /// even when nobody calls `join`.
    private func getHeld<T>(
        _ holders: QueueHolders, _ wait: QueueWait,
        _ decode: (UnsafeRawBufferPointer) throws(CodecError) -> T,
        scratch: UnsafeMutableRawBufferPointer
    ) throws(QueueError) -> T {
        let me = ConsumerIdentity.current
        if holders.requeues && wait.mayWaitForLock
            && getsCounted.wrappingAdd(1, ordering: .relaxed).newValue % Self.getsPerHolderCheck == 0
        {
            reapDeadHoldersIfDue()
        }
        var spun = false
        var registered = false
        let waiters = word(QueueLayout.notEmptyWaiters)
        while true {
            guard lock(wait) else { throw .empty }
            if registered {
                Self.unregister(waiters)
                registered = false
            }
            var current = state
            let requeued = holders.requeuedCount > 0
            var writes = holders.journal()
            // No slot (a thousand live processes hold items): wait as if the queue were empty.
            if current.count > 0 || requeued,
                let slot = holders.claimSlot(of: me, hint: slotHint.load(ordering: .relaxed), &writes)
            {
                slotHint.store(slot, ordering: .relaxed)
                if requeued, let entry = holders.takeRequeued(slot, &writes) {
                    return try serveRequeued(entry, of: slot, holders, current, writes, decode, scratch)
                }
                let found: Found
                do {
                    found = try take(&current, scratch: scratch)
                } catch {
                    unlock()
                    throw error
                }
                switch found {
                case .copied(let count, let next):
                    let bytes = UnsafeRawBufferPointer(rebasing: scratch[..<count])
                    let entry = holders.hold(slot, bytes: bytes, &writes)
                    commit(next, writes)
                    finishTake()
                    do {
                        return try decode(bytes)
                    } catch {
                        forgetUndecodable(entry, of: slot, holders)
                        throw .codec(error)
                    }
                case .inRing(let bytes, var next):
                    let value: T
                    do {
                        value = try decode(bytes)
                    } catch {
                        next.unfinished = next.unfinished == 0 ? 0 : next.unfinished - 1
                        commit(next)
                        finishTake()
                        throw .codec(error)
                    }
                    _ = holders.hold(slot, bytes: bytes, &writes)
                    commit(next, writes)
                    finishTake()
                    return value
                case .mapped(let message, var next):
                    let value: T
                    do {
                        value = try mapAndDecode(message.descriptor, size: message.length, decode) { bytes in
                            _ = holders.hold(slot, bytes: bytes, &writes)
                        }
                    } catch {
                        next.unfinished = next.unfinished == 0 ? 0 : next.unfinished - 1
                        systemClose(message.descriptor)
                        commit(next, between: { sockets.discard() })
                        finishTake()
                        throw error
                    }
                    systemClose(message.descriptor)
                    commit(next, writes, between: { sockets.discard() })
                    finishTake()
                    return value
                case .skipped:
                    finishTake()
                    continue
                }
            }
            if current.count == 0 && !requeued && isClosed {
                unlock()
                throw .closed
            }
            if holders.requeues && spun && wait.mayWait
                && WaitDeadline.now >= nextHolderCheck.load(ordering: .relaxed)
            {
                // About to sleep: first look for dead holders whose items should come back.
                unlock()
                reapDeadHoldersIfDue()
                continue
            }
            try waitForOtherSide(
                wait, unavailable: .empty, progress: putCountWord, seen: current.putCount,
                sequence: notEmptySequence, waiters: waiters, spun: &spun, registered: &registered,
                slice: holders.requeues ? Self.holderCheckInterval : nil)
        }
    }

    /// Under the lock, with `writes` giving `entry` (an item put back) to slot `slot`: copies
    /// its bytes out, commits, unlocks and decodes them.
    private func serveRequeued<T>(
        _ entry: UInt32, of slot: Int, _ holders: QueueHolders, _ current: QueueState,
        _ writes: JournalWrites,
        _ decode: (UnsafeRawBufferPointer) throws(CodecError) -> T, _ scratch: UnsafeMutableRawBufferPointer
    ) throws(QueueError) -> T {
        let length = holders.keptLength(entry)
        // Copied under the lock: once it is released, a stray taskDone could free the chunks.
        var bytes: [UInt8] = []
        if length <= scratch.count {
            holders.copyKept(entry, to: scratch.baseAddress!)
        } else {
            bytes = [UInt8](repeating: 0, count: length)
            bytes.withUnsafeMutableBytes { holders.copyKept(entry, to: $0.baseAddress!) }
        }
        commit(current, writes)
        unlock()
        let decoded =
            length <= scratch.count
            ? Result { () throws(CodecError) -> T in
                try decode(UnsafeRawBufferPointer(rebasing: scratch[..<length]))
            }
            : bytes.withUnsafeBytes { bytes in Result { () throws(CodecError) -> T in try decode(bytes) } }
        do {
            return try decoded.get()
        } catch {
            forgetUndecodable(entry, of: slot, holders)
            throw .codec(error)
        }
    }

    /// Called under the lock when a put finds no room or a get finds nothing; always unlocks.
    /// Throws `unavailable` if `wait` may not wait, or the wait's end (time-out, cancellation).
    /// The first time, spins briefly for the other side's count (`progress`, `seen` now) to
    /// move; after that, sleeps on `sequence`, registered in `waiters`. The caller retries.
    private func waitForOtherSide(
        _ wait: QueueWait, unavailable: QueueError, progress: SharedWord64, seen: UInt64,
        sequence: FutexWord, waiters: FutexWord, spun: inout Bool, registered: inout Bool,
        slice: Int64? = nil
    ) throws(QueueError) {
        guard wait.mayWait else {
            unlock()
            throw unavailable
        }
        if let failure = Self.stop(wait) {
            unlock()
            throw failure
        }
        if !spun {
            spun = true
            unlock()
            spin { progress.load() != seen || isClosed }
            return
        }
        _ = waiters.add(1)
        registered = true
        let expected = sequence.load()
        unlock()
        sleep(on: sequence, ifEqualTo: expected, wait, slice: slice)
    }

    /// Where the item a take found is, under the lock.
    private enum Found {
        /// Copied into the scratch buffer, not committed: commit `next`, then decode it after
        /// unlocking.
        case copied(Int, next: QueueState)
        /// In the ring, not committed: decode it in place, then commit `next`.
        case inRing(UnsafeRawBufferPointer, next: QueueState)
        /// A large item's message (peeked, its descriptor a duplicate), not committed: decode
        /// its memory, then commit `next` around removing the message.
        case mapped(QueueSockets.Message, next: QueueState)
        /// Only records whose descriptor never arrived, dropped and committed.
        case skipped
    }

    /// After a take is committed: tells sleeping putters about the room and unlocks.
    @inline(__always) private func finishTake() {
        let wake = signal(QueueLayout.notFullWaiters, notFullSequence, QueueLayout.fruitlessFullWakes)
        let wakeJoiners = joinersToWake()
        unlock()
        if wake { wakeSleepers(notFullSequence, all: true, QueueLayout.fruitlessFullWakes) }
        if wakeJoiners { joinSequence.wakeAll() }
    }

    /// Under the lock: whether a drop (an undecodable or lost item, counted done) has just
    /// finished the last unfinished item while someone waits in `join`.
    @inline(__always) private func joinersToWake() -> Bool {
        guard unfinishedWord.load() == 0, word(QueueLayout.joinWaiters).load() > 0 else { return false }
        _ = joinSequence.add(1)
        return true
    }

    /// An item taken by slot `slot` (as `entry`, or ``QueueHolders/none``) but found
    /// undecodable after the lock was released: count it done, and not held.
    private func forgetUndecodable(_ entry: UInt32, of slot: Int, _ holders: QueueHolders) {
        lock()
        var writes = holders.journal()
        if holders.holder(slot) == ConsumerIdentity.current { holders.finish(entry, of: slot, &writes) }
        var next = state
        if next.unfinished > 0 { next.unfinished -= 1 }
        commit(next, writes)
        let wakeJoiners = joinersToWake()
        unlock()
        if wakeJoiners { joinSequence.wakeAll() }
    }

    /// An item taken but found undecodable after the lock was released: count it done.
    private func forgetUndecodable() {
        lock()
        let left = unfinishedWord.load()
        if left > 0 { unfinishedWord.store(left - 1) }
        let wakeJoiners = joinersToWake()
        unlock()
        if wakeJoiners { joinSequence.wakeAll() }
    }

    /// Finds the first item at the front, under the lock, passing over wrap records and
    /// dropping large records whose descriptor never arrived.
    private func take(_ current: inout QueueState, scratch: UnsafeMutableRawBufferPointer) throws(QueueError)
        -> Found
    {
        while current.count > 0 {
            let offset = Int(current.readPosition % UInt64(ringBytes))
            let header = (ring + offset).assumingMemoryBound(to: UInt32.self)
            let length = Int(header[0])
            let kind = header[1]
            if kind == QueueLayout.wrapKind {
                guard offset + QueueLayout.recordHeader + length == ringBytes else {
                    throw .corrupted("a wrap record at \(offset) of length \(length)")
                }
                current.readPosition &+= UInt64(ringBytes - offset)
                continue
            }
            let record = QueueLayout.recordSize(payload: length)
            guard offset + record <= ringBytes,
                kind == QueueLayout.inlineKind
                    || (kind == QueueLayout.largeKind && length == QueueLayout.largePayload)
            else {
                throw .corrupted("a record of kind \(kind) and length \(length) at \(offset)")
            }
            var next = current
            next.readPosition &+= UInt64(record)
            next.getCount &+= 1
            if kind == QueueLayout.inlineKind {
                let bytes = UnsafeRawBufferPointer(
                    start: ring + offset + QueueLayout.recordHeader, count: length)
                guard length <= scratch.count else { return .inRing(bytes, next: next) }
                if length > 0 { scratch.baseAddress!.copyMemory(from: bytes.baseAddress!, byteCount: length) }
                return .copied(length, next: next)
            }
            let number = SharedWord64(ring + offset + 8).load()
            let size = SharedWord64(ring + offset + 16).load()
            if let message = try findMessage(number: number, size: size) {
                return .mapped(message, next: next)
            }
            // The descriptor never arrived: drop the record (and count it done, since nobody can).
            next.unfinished = next.unfinished == 0 ? 0 : next.unfinished - 1
            commit(next)
            let skipped = SharedWord64(base + QueueLayout.skippedItems)
            skipped.store(skipped.load() &+ 1)
            current = next
        }
        return .skipped
    }

    /// Peeks for large item `number`'s message, removing older ones left by killed consumers.
    /// `nil` when it is missing.
    private func findMessage(number: UInt64, size: UInt64) throws(QueueError) -> QueueSockets.Message? {
        while let message = try sockets.peek() {
            if message.sequence < number {
                // Left by a consumer killed between its commit and its receive.
                systemClose(message.descriptor)
                sockets.discard()
                continue
            }
            guard message.sequence == number, message.length == size else {
                systemClose(message.descriptor)
                return nil
            }
            return message
        }
        return nil
    }

    /// Maps a large item's memory and decodes it; `keep` sees its bytes after a successful
    /// decode, before they are unmapped.
    private func mapAndDecode<T>(
        _ fd: Int32, size: UInt64, _ decode: (UnsafeRawBufferPointer) throws(CodecError) -> T,
        keep: (UnsafeRawBufferPointer) -> Void = { _ in }
    ) throws(QueueError) -> T {
        guard size > 0, mp_fd_size(fd) >= Int64(clamping: size),
            let address = mp_queue_map_readonly(fd, size)
        else {
            throw .system(SystemError("mmap"))
        }
        defer { mp_unmap(address, size) }
        let bytes = UnsafeRawBufferPointer(start: address, count: Int(size))
        do {
            let value = try decode(bytes)
            keep(bytes)
            return value
        } catch {
            throw .codec(error)
        }
    }

    // MARK: - Close, join

    /// Marks the queue closed for every process and wakes every sleeper.
    func close() {
        lock()
        word(QueueLayout.closed).store(1)
        _ = notEmptySequence.add(1)
        _ = notFullSequence.add(1)
        unlock()
        notEmptySequence.wakeAll()
        notFullSequence.wakeAll()
    }

    /// Marks one item done; wakes joiners when none is left. In a queue that records holders,
    /// the item is this process's oldest, and a process that holds none may not mark one.
    func taskDone() throws(QueueError) {
        if let holders { return try taskDone(holders) }
        lock()
        let left = unfinishedWord.load()
        guard left > 0 else {
            unlock()
            throw .taskDoneTooManyTimes
        }
        unfinishedWord.store(left - 1)
        var wake = false
        if left == 1 && word(QueueLayout.joinWaiters).load() > 0 {
            _ = joinSequence.add(1)
            wake = true
        }
        unlock()
        if wake { joinSequence.wakeAll() }
    }

    private func taskDone(_ holders: QueueHolders) throws(QueueError) {
        let me = ConsumerIdentity.current
        lock()
        var writes = holders.journal()
        guard let slot = holders.slot(of: me, hint: slotHint.load(ordering: .relaxed)),
            holders.finishOldest(slot, &writes)
        else {
            unlock()
            throw .taskDoneTooManyTimes
        }
        slotHint.store(slot, ordering: .relaxed)
        holders.countDone(&writes)
        var next = state
        next.unfinished = next.unfinished > 0 ? next.unfinished - 1 : 0
        commit(next, writes)
        var wake = false
        if next.unfinished == 0 && word(QueueLayout.joinWaiters).load() > 0 {
            _ = joinSequence.add(1)
            wake = true
        }
        unlock()
        if wake { joinSequence.wakeAll() }
    }

    /// Waits until every item put has been marked done. In a queue that records holders, checks
    /// on arrival and every ``holderCheckInterval`` whether a holder died (a dead process
    /// wakes nobody) and hands its items back (``reapDeadHolders()``).
    func join(_ wait: QueueWait) throws(QueueError) {
        var registered = false
        var nextCheck: Int64 = 0
        let waiters = word(QueueLayout.joinWaiters)
        while true {
            if holders != nil && WaitDeadline.now >= nextCheck {
                nextCheck = WaitDeadline.now + Self.holderCheckInterval
                reapDeadHolders()
            }
            lock()
            if registered {
                Self.unregister(waiters)
                registered = false
            }
            if unfinishedWord.load() == 0 {
                unlock()
                return
            }
            if let failure = Self.stop(wait) {
                unlock()
                throw failure
            }
            _ = waiters.add(1)
            registered = true
            let sequence = joinSequence.load()
            unlock()
            sleep(
                on: joinSequence, ifEqualTo: sequence, wait,
                slice: holders == nil ? nil : Self.holderCheckInterval)
        }
    }

    /// Finds the holders that died with items taken and not done, and hands their items back:
    /// put back for other consumers, or counted done and recorded for a report
    /// (``AbandonedItemPolicy``). Called outside the lock; reads `/proc` only for slots that
    /// hold items.
    func reapDeadHolders() {
        guard let holders else { return }
        let me = ConsumerIdentity.current
        for slot in 0..<holders.highWater {
            let holder = holders.holder(slot)
            guard holder.pid != 0, holder != me, holders.held(slot) > 0, holder.isGone else { continue }
            lock()
            var requeued = false
            if holders.holder(slot) == holder {
                var record: QueueHolders.Record? = nil
                while true {
                    var writes = holders.journal()
                    let step = holders.reclaimStep(slot, closed: isClosed, record: &record, &writes)
                    var next = state
                    next.unfinished = next.unfinished > step.abandoned ? next.unfinished - step.abandoned : 0
                    commit(next, writes)
                    requeued = requeued || step.requeued
                    if step.finished { break }
                }
            }
            if requeued { _ = notEmptySequence.add(1) }
            let wakeJoiners = joinersToWake()
            unlock()
            if requeued { notEmptySequence.wakeAll() }
            if wakeJoiners { joinSequence.wakeAll() }
        }
    }

    /// ``reapDeadHolders()``, unless this process did it less than ``holderCheckInterval`` ago.
    private func reapDeadHoldersIfDue() {
        let now = WaitDeadline.now
        let due = nextHolderCheck.load(ordering: .relaxed)
        guard now >= due,
            nextHolderCheck.compareExchange(
                expected: due, desired: now + Self.holderCheckInterval, ordering: .relaxed
            ).exchanged
        else { return }
        reapDeadHolders()
    }

    /// The items abandoned by dead holders since `cursor`, if any.
    func abandoned(since cursor: QueueHolders.ReportCursor) -> (AbandonedItems, QueueHolders.ReportCursor)? {
        guard let holders else { return nil }
        lock()
        defer { unlock() }
        return holders.abandoned(since: cursor)
    }

    // MARK: - Waiting

    /// Why a waiting operation must stop now, if it must.
    private static func stop(_ wait: QueueWait) -> QueueError? {
        if wait.cancellation?.isCancelled == true { return .cancelled }
        if wait.deadline.hasPassed { return .timedOut }
        return nil
    }

    private static func unregister(_ waiters: FutexWord) {
        // Saturating: a registration presumed dead may already have been dropped.
        let count = waiters.load()
        if count > 0 { waiters.store(count - 1) }
    }

    /// Under the lock, after a change others may sleep on: bumps the futex word if anyone is
    /// registered and says whether to wake them (after unlocking). A registration that wakes
    /// have kept missing is dropped (its process died asleep).
    @inline(__always) private func signal(_ waitersOffset: Int, _ sequence: FutexWord, _ fruitlessOffset: Int)
        -> Bool
    {
        let waiters = word(waitersOffset)
        guard waiters.load() > 0 else { return false }
        let fruitless = word(fruitlessOffset)
        if fruitless.load() >= Self.fruitlessLimit {
            fruitless.store(0)
            Self.unregister(waiters)
        }
        _ = sequence.add(1)
        return true
    }

    private func wakeSleepers(_ sequence: FutexWord, all: Bool, _ fruitlessOffset: Int) {
        let woken = all ? sequence.wakeAll() : sequence.wake(1)
        let fruitless = word(fruitlessOffset)
        if woken == 0 {
            _ = fruitless.add(1)
        } else if fruitless.load() != 0 {
            fruitless.store(0)
        }
    }

    /// Spins (a few microseconds at most) until `done`.
    @inline(__always) private func spin(_ done: () -> Bool) {
        let limit = WaitDeadline.now + Self.spinNanoseconds
        var round = 0
        while !done() {
            mp_spin_pause()
            round &+= 1
            if round & 31 == 0 && WaitDeadline.now >= limit { return }
        }
    }

    /// Sleeps while `sequence` holds `expected`, for one slice at most.
    /// Sleeps while `sequence` holds `expected`, for one slice at most (`slice` at most, if
    /// given: a waiter that must look at something no one will wake it for).
    private func sleep(
        on sequence: FutexWord, ifEqualTo expected: UInt32, _ wait: QueueWait, slice: Int64? = nil
    ) {
        if wait.cancellation?.isCancelled == true { return }
        let longest = wait.cancellation == nil ? Self.sleepSlice : Self.cancellationSlice
        let length = slice.map { min($0, longest) } ?? longest
        _ = sequence.wait(ifEqualTo: expected, until: wait.deadline.capped(atMost: length))
    }

    /// Wakes every sleeper of every kind (a cancelled waiter's task calls this).
    func wakeAll() {
        notEmptySequence.wakeAll()
        notFullSequence.wakeAll()
        joinSequence.wakeAll()
    }
}
