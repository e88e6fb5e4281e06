/// A ``JoinableQueue``'s record of who holds what: which processes took items and have not
/// marked them done, so that the items of a consumer that died unfinished are found and put back
/// or reported (``AbandonedItemPolicy``) instead of leaving `join` waiting forever.
///
/// It lives in the queue's segment after the ring, and every change to it is part of the same
/// journaled commit as the queue's state (``JournalWrites``): a process killed in the middle of a
/// `get`, a `taskDone` or a reclaim leaves the record as it was before or after, never between.
///
/// - Holder slots: one per process holding items, named by pid and start time
///   (``ConsumerIdentity``), with how many items it holds.
/// - With ``AbandonedItemPolicy/requeue``, also one entry per item held, in the order taken
///   (`taskDone` finishes a process's oldest), with the item's encoded bytes kept in a store of
///   chunks (chained, so any free chunks serve any item), and a list of items put back, which
///   `get` serves before the ring.
/// - A log of the last deaths' abandoned items, for ``AbandonedItems``.
///
/// Everything here runs under the queue's lock, except the reads of slots (``highWater``,
/// ``holder(_:)``, ``held(_:)``) with which waiters look for dead holders before taking it.
struct QueueHolders {
    /// No entry, chunk or slot.
    static let none: UInt32 = .max
    static let holderSlots = 1024
    static let entryCount = 4096
    static let chunkBytes = 256
    static let logRecords = 32
    /// Room for the writes of one commit, counting a word written twice twice (the most, 13, are
    /// a take that claims a new slot and a new entry).
    static let journalCapacity = 32
    /// The largest chunk store (256 GiB), so chunk numbers fit in 32 bits.
    static let maximumChunks = 1 << 30

    // Offsets from the area's start. Line 0: constants, written once by the creator.
    private static let policyOffset = 0  // u64: 1 report, 2 requeue
    private static let maxDeliveriesOffset = 8  // u64
    private static let chunkCountOffset = 16  // u64: 0 when nothing is kept
    private static let entryCountOffset = 24  // u64: 0 when nothing is kept
    // Line 1: lists and counters.
    private static let highWaterOffset = 64  // u64: slots ever used; scans stop there
    private static let freeEntriesOffset = 72  // u64: the free entry list's head
    private static let freeChunksOffset = 80  // u64: low: the free chunk list's head; high: how many
    private static let requeuedOffset = 88  // u64: low: head, high: tail of the items put back
    private static let requeuedCountOffset = 96  // u64
    // Line 2: totals since creation.
    private static let doneTotalOffset = 128  // u64: taskDone calls
    private static let abandonedTotalOffset = 136  // u64: items counted done for dead holders
    private static let recordCountOffset = 144  // u64: abandonment records written
    private static let requeuedTotalOffset = 152  // u64: items put back
    // The journal's extra writes, the abandonment log, the slots.
    private static let journalOffset = 192
    private static let logOffset = 768
    static let slotsOffset = 1280
    static let slotBytes = 32
    private static let entryBytes = 32
    private static let recordBytes = 16

    /// Where the area starts in the segment.
    let area: Int
    private let base: UnsafeMutableRawPointer
    private let segmentBytes: Int
    /// Whether items of dead holders are put back (else reported).
    let requeues: Bool
    let maxDeliveries: UInt32
    private let chunkCount: Int
    private let entries: Int
    private let entriesAt: Int
    private let chunkNextAt: Int
    private let chunkDataAt: Int

    /// The area's size for `policy` beside a ring of `ringBytes`.
    static func bytes(for policy: AbandonedItemPolicy, ringBytes: Int) -> Int {
        let slotsEnd = slotsOffset + holderSlots * slotBytes
        guard policy.requeues else { return slotsEnd }
        let chunks = min(ringBytes / chunkBytes, maximumChunks)
        return layout(chunks: chunks, entries: entryCount).end
    }

    private static func layout(chunks: Int, entries: Int) -> (
        entries: Int, chunkNext: Int, chunkData: Int, end: Int
    ) {
        let entriesAt = slotsOffset + holderSlots * slotBytes
        let chunkNext = entriesAt + entries * entryBytes
        let chunkData = (chunkNext + chunks * 4 + 63) & ~63
        return (entriesAt, chunkNext, chunkData, chunkData + chunks * chunkBytes)
    }

    /// Writes a new area (the creator, before anyone else sees the segment).
    static func format(
        base: UnsafeMutableRawPointer, area: Int, policy: AbandonedItemPolicy, ringBytes: Int
    ) {
        let at = base + area
        SharedWord64(at + policyOffset).store(policy.requeues ? 2 : 1)
        SharedWord64(at + maxDeliveriesOffset).store(UInt64(policy.maxDeliveries))
        let empty = JournalWrites.word(low: none, high: none)
        SharedWord64(at + requeuedOffset).store(empty)
        for slot in 0..<holderSlots {
            SharedWord64(at + slotsOffset + slot * slotBytes + 24).store(empty)
        }
        guard policy.requeues else { return }
        let chunks = min(ringBytes / chunkBytes, maximumChunks)
        let places = layout(chunks: chunks, entries: entryCount)
        SharedWord64(at + chunkCountOffset).store(UInt64(chunks))
        SharedWord64(at + entryCountOffset).store(UInt64(entryCount))
        // Every entry and every chunk starts in its free list, in order.
        for entry in 0..<entryCount {
            let next = entry + 1 < entryCount ? UInt32(entry + 1) : none
            SharedWord64(at + places.entries + entry * entryBytes).store(
                JournalWrites.word(low: next, high: none))
        }
        let nexts = (at + places.chunkNext).assumingMemoryBound(to: UInt32.self)
        for chunk in 0..<chunks { nexts[chunk] = chunk + 1 < chunks ? UInt32(chunk + 1) : none }
        SharedWord64(at + freeEntriesOffset).store(0)
        SharedWord64(at + freeChunksOffset).store(
            JournalWrites.word(low: chunks > 0 ? 0 : none, high: UInt32(chunks)))
    }

    /// Attaches to the area at `area` of a segment of `segmentBytes`.
    init(base: UnsafeMutableRawPointer, area: Int, segmentBytes: Int) throws(QueueError) {
        guard area % 64 == 0, area > 0, area <= segmentBytes - Self.slotsOffset - Self.holderSlots * 32
        else {
            throw .corrupted("a holder record at \(area) in a segment of \(segmentBytes)")
        }
        let at = base + area
        let policy = SharedWord64(at + Self.policyOffset).load()
        let deliveries = SharedWord64(at + Self.maxDeliveriesOffset).load()
        let chunks = SharedWord64(at + Self.chunkCountOffset).load()
        let entries = SharedWord64(at + Self.entryCountOffset).load()
        guard policy == 1 || policy == 2, deliveries >= 1, deliveries <= UInt64(UInt32.max),
            chunks <= UInt64(Self.maximumChunks), entries <= UInt64(Self.entryCount)
        else {
            throw .corrupted("a holder record with policy \(policy) and \(chunks) chunks")
        }
        let places = Self.layout(chunks: Int(chunks), entries: Int(entries))
        guard area + places.end <= segmentBytes else {
            throw .corrupted("a holder record of \(places.end) bytes at \(area) in \(segmentBytes)")
        }
        self.base = base
        self.area = area
        self.segmentBytes = segmentBytes
        requeues = policy == 2
        maxDeliveries = UInt32(deliveries)
        chunkCount = Int(chunks)
        self.entries = Int(entries)
        entriesAt = area + places.entries
        chunkNextAt = area + places.chunkNext
        chunkDataAt = area + places.chunkData
    }

    /// The policy the queue was made with.
    var policy: AbandonedItemPolicy {
        AbandonedItemPolicy(requeues: requeues, maxDeliveries: Int(maxDeliveries))
    }

    // MARK: - Words

    @inline(__always) private func word(_ offset: Int) -> SharedWord64 { SharedWord64(base + offset) }
    @inline(__always) private func field(_ offset: Int) -> Int { area + offset }
    @inline(__always) private func slotField(_ slot: Int, _ offset: Int) -> Int {
        area + Self.slotsOffset + slot * Self.slotBytes + offset
    }
    @inline(__always) private func entryField(_ entry: UInt32, _ offset: Int) -> Int {
        entriesAt + Int(entry) * Self.entryBytes + offset
    }
    /// Whether `entry`, read from shared memory, names an entry (not ``none``, not out of range:
    /// a corrupted list must not lead writes outside the area).
    @inline(__always) private func isEntry(_ entry: UInt32) -> Bool { Int(entry) < entries }
    private var chunkNexts: UnsafeMutablePointer<UInt32> {
        (base + chunkNextAt).assumingMemoryBound(to: UInt32.self)
    }
    private static func low(_ word: UInt64) -> UInt32 { JournalWrites.low(word) }
    private static func high(_ word: UInt64) -> UInt32 { JournalWrites.high(word) }
    private static func pair(_ low: UInt32, _ high: UInt32) -> UInt64 {
        JournalWrites.word(low: low, high: high)
    }

    /// A journal for one commit's writes.
    func journal() -> JournalWrites {
        JournalWrites(base: base, area: area + Self.journalOffset, capacity: Self.journalCapacity)
    }

    /// Applies a sealed journal again (recovery from a process that died committing).
    func replayJournal() {
        JournalWrites.replay(
            base: base, area: area + Self.journalOffset, capacity: Self.journalCapacity,
            segmentBytes: segmentBytes)
    }

    // MARK: - Snapshots (exact under the lock)

    /// Slots ever used: every holder is below.
    var highWater: Int { min(Int(clamping: word(field(Self.highWaterOffset)).load()), Self.holderSlots) }

    /// Who holds slot `slot` (pid 0: nobody).
    func holder(_ slot: Int) -> ConsumerIdentity {
        ConsumerIdentity(
            pid: Int32(truncatingIfNeeded: word(slotField(slot, 0)).load()),
            start: word(slotField(slot, 8)).load())
    }

    /// How many items slot `slot`'s process holds.
    func held(_ slot: Int) -> Int { Int(Self.low(word(slotField(slot, 16)).load())) }

    /// Items put back and not yet taken again.
    var requeuedCount: Int { Int(clamping: word(field(Self.requeuedCountOffset)).load()) }

    var doneTotal: Int { Int(clamping: word(field(Self.doneTotalOffset)).load()) }
    var abandonedTotal: UInt64 { word(field(Self.abandonedTotalOffset)).load() }
    var requeuedTotal: Int { Int(clamping: word(field(Self.requeuedTotalOffset)).load()) }

    // MARK: - Slots

    /// The slot of `me`, trying `hint` first.
    func slot(of me: ConsumerIdentity, hint: Int) -> Int? {
        let limit = highWater
        if hint < limit && holder(hint) == me { return hint }
        for slot in 0..<limit where holder(slot) == me { return slot }
        return nil
    }

    /// The slot of `me`, or a new one; `nil` when every slot belongs to a live process.
    func claimSlot(of me: ConsumerIdentity, hint: Int, _ writes: inout JournalWrites) -> Int? {
        if let slot = slot(of: me, hint: hint) { return slot }
        let limit = highWater
        var free: Int? = nil
        for slot in 0..<limit where word(slotField(slot, 0)).load() == 0 {
            free = slot
            break
        }
        if free == nil && limit < Self.holderSlots {
            free = limit
            writes.store(field(Self.highWaterOffset), UInt64(limit + 1))
        }
        if free == nil {
            // Full: a slot of a process that ended holding nothing can go.
            for slot in 0..<limit where held(slot) == 0 && holder(slot).isGone {
                free = slot
                break
            }
        }
        guard let slot = free else { return nil }
        writes.store(slotField(slot, 0), UInt64(UInt32(bitPattern: me.pid)))
        writes.store(slotField(slot, 8), me.start)
        writes.store(slotField(slot, 16), 0)
        writes.store(slotField(slot, 24), Self.pair(Self.none, Self.none))
        return slot
    }

    // MARK: - Taking and finishing

    /// Records that slot `slot` took an item (`bytes`: its encoded form, kept when the queue
    /// puts items back and there is room). Returns the item's entry, or ``none``.
    func hold(_ slot: Int, bytes: UnsafeRawBufferPointer, _ writes: inout JournalWrites) -> UInt32 {
        let counts = writes.load(slotField(slot, 16))
        guard requeues else {
            writes.store(slotField(slot, 16), counts + 1)
            return Self.none
        }
        let entry = Self.low(writes.load(field(Self.freeEntriesOffset)))
        guard isEntry(entry) else {
            // No entry left: counted, in no order, and never put back.
            writes.store(slotField(slot, 16), Self.pair(Self.low(counts) + 1, Self.high(counts) + 1))
            return Self.none
        }
        writes.store(field(Self.freeEntriesOffset), UInt64(Self.low(writes.load(entryField(entry, 0)))))
        let (first, kept) = keep(bytes, &writes)
        writes.store(entryField(entry, 0), Self.pair(Self.none, UInt32(slot)))
        writes.store(entryField(entry, 8), kept)
        writes.store(entryField(entry, 16), Self.pair(first, 1))
        append(entry, to: slot, &writes)
        writes.store(slotField(slot, 16), counts + 1)
        return entry
    }

    /// Copies `bytes` into free chunks; returns the first chunk and the length kept, or
    /// `UInt64.max` when they do not fit.
    private func keep(_ bytes: UnsafeRawBufferPointer, _ writes: inout JournalWrites) -> (UInt32, UInt64) {
        let needed = (bytes.count + Self.chunkBytes - 1) / Self.chunkBytes
        let free = writes.load(field(Self.freeChunksOffset))
        let available = Int(Self.high(free))
        guard needed <= available else { return (Self.none, .max) }
        guard needed > 0 else { return (Self.none, 0) }
        // Written into chunks nobody uses until the commit takes them off the free list.
        let first = Self.low(free)
        var chunk = first
        var copied = 0
        while true {
            guard Int(chunk) < chunkCount else { return (Self.none, .max) }  // A corrupted list.
            let part = min(Self.chunkBytes, bytes.count - copied)
            (base + chunkDataAt + Int(chunk) * Self.chunkBytes).copyMemory(
                from: bytes.baseAddress! + copied, byteCount: part)
            copied += part
            let next = chunkNexts[Int(chunk)]
            if copied == bytes.count {
                let left = available - needed
                writes.store(
                    field(Self.freeChunksOffset), Self.pair(left > 0 ? next : Self.none, UInt32(left)))
                return (first, UInt64(bytes.count))
            }
            chunk = next
        }
    }

    /// Appends `entry` to slot `slot`'s list (its newest item).
    private func append(_ entry: UInt32, to slot: Int, _ writes: inout JournalWrites) {
        let ends = writes.load(slotField(slot, 24))
        let tail = Self.high(ends)
        if !isEntry(tail) {
            writes.store(slotField(slot, 24), Self.pair(entry, entry))
        } else {
            let link = writes.load(entryField(tail, 0))
            writes.store(entryField(tail, 0), Self.pair(entry, Self.high(link)))
            writes.store(slotField(slot, 24), Self.pair(Self.low(ends), entry))
        }
    }

    /// Marks slot `slot`'s oldest item finished (`taskDone`); `false` if it holds none.
    func finishOldest(_ slot: Int, _ writes: inout JournalWrites) -> Bool {
        let counts = writes.load(slotField(slot, 16))
        guard Self.low(counts) > 0 else { return false }
        let head = Self.low(writes.load(slotField(slot, 24)))
        if requeues && isEntry(head) {
            unlink(head, from: slot, &writes)
            release(head, &writes)
            writes.store(slotField(slot, 16), counts - 1)
        } else if requeues {
            // One of the items counted without an entry.
            let overflow = Self.high(counts)
            writes.store(
                slotField(slot, 16), Self.pair(Self.low(counts) - 1, overflow > 0 ? overflow - 1 : 0))
        } else {
            writes.store(slotField(slot, 16), counts - 1)
        }
        return true
    }

    /// Finishes one specific item of slot `slot` (one that could not be decoded), or its oldest
    /// if `entry` is ``none``.
    func finish(_ entry: UInt32, of slot: Int, _ writes: inout JournalWrites) {
        guard isEntry(entry), Self.high(writes.load(entryField(entry, 0))) == UInt32(slot) else {
            _ = finishOldest(slot, &writes)
            return
        }
        unlink(entry, from: slot, &writes)
        release(entry, &writes)
        let counts = writes.load(slotField(slot, 16))
        if Self.low(counts) > 0 { writes.store(slotField(slot, 16), counts - 1) }
    }

    /// Counts one `taskDone`.
    func countDone(_ writes: inout JournalWrites) {
        writes.store(field(Self.doneTotalOffset), writes.load(field(Self.doneTotalOffset)) &+ 1)
    }

    /// Removes `entry` from slot `slot`'s list.
    private func unlink(_ entry: UInt32, from slot: Int, _ writes: inout JournalWrites) {
        guard isEntry(entry) else { return }
        let ends = writes.load(slotField(slot, 24))
        let next = Self.low(writes.load(entryField(entry, 0)))
        var previous = Self.none
        var current = Self.low(ends)
        var steps = 0
        while current != entry {
            guard isEntry(current), steps < entries else { return }  // Not in the list.
            previous = current
            current = Self.low(writes.load(entryField(current, 0)))
            steps += 1
        }
        if previous == Self.none {
            let tail = Self.high(ends) == entry ? Self.none : Self.high(ends)
            writes.store(slotField(slot, 24), Self.pair(next, tail))
        } else {
            let link = writes.load(entryField(previous, 0))
            writes.store(entryField(previous, 0), Self.pair(next, Self.high(link)))
            if Self.high(ends) == entry {
                writes.store(slotField(slot, 24), Self.pair(Self.low(ends), previous))
            }
        }
    }

    /// Returns `entry` and its chunks to their free lists.
    private func release(_ entry: UInt32, _ writes: inout JournalWrites) {
        guard isEntry(entry) else { return }
        let kept = writes.load(entryField(entry, 8))
        let first = Self.low(writes.load(entryField(entry, 16)))
        if kept != .max && kept > 0 && first != Self.none {
            let count = Int((kept + UInt64(Self.chunkBytes) - 1) / UInt64(Self.chunkBytes))
            var last = first
            for _ in 1..<count {
                guard Int(last) < chunkCount else { break }
                last = chunkNexts[Int(last)]
            }
            guard Int(last) < chunkCount else { return }
            let free = writes.load(field(Self.freeChunksOffset))
            // The last chunk's link is its own (its entry ends by length): set before the commit.
            chunkNexts[Int(last)] = Self.low(free)
            writes.store(field(Self.freeChunksOffset), Self.pair(first, Self.high(free) + UInt32(count)))
        }
        let freeEntries = Self.low(writes.load(field(Self.freeEntriesOffset)))
        writes.store(entryField(entry, 0), Self.pair(freeEntries, Self.none))
        writes.store(entryField(entry, 8), 0)
        writes.store(field(Self.freeEntriesOffset), UInt64(entry))
    }

    // MARK: - Items put back

    /// Gives slot `slot` the oldest item put back; returns its entry (its bytes are read with
    /// ``copyKept(_:to:)``), or `nil` when none waits.
    func takeRequeued(_ slot: Int, _ writes: inout JournalWrites) -> UInt32? {
        let ends = writes.load(field(Self.requeuedOffset))
        let entry = Self.low(ends)
        guard isEntry(entry) else { return nil }
        let next = Self.low(writes.load(entryField(entry, 0)))
        writes.store(
            field(Self.requeuedOffset), Self.pair(next, next == Self.none ? Self.none : Self.high(ends)))
        let waiting = writes.load(field(Self.requeuedCountOffset))
        writes.store(field(Self.requeuedCountOffset), waiting > 0 ? waiting - 1 : 0)
        writes.store(entryField(entry, 0), Self.pair(Self.none, UInt32(slot)))
        let chunkAndDeliveries = writes.load(entryField(entry, 16))
        writes.store(
            entryField(entry, 16),
            Self.pair(Self.low(chunkAndDeliveries), Self.high(chunkAndDeliveries) &+ 1))
        append(entry, to: slot, &writes)
        writes.store(slotField(slot, 16), writes.load(slotField(slot, 16)) + 1)
        return entry
    }

    /// The length of `entry`'s kept bytes.
    func keptLength(_ entry: UInt32) -> Int { Int(clamping: word(entryField(entry, 8)).load()) }

    /// Copies `entry`'s kept bytes to `destination` (``keptLength(_:)`` bytes).
    func copyKept(_ entry: UInt32, to destination: UnsafeMutableRawPointer) {
        let length = keptLength(entry)
        var chunk = Self.low(word(entryField(entry, 16)).load())
        var copied = 0
        while copied < length && Int(chunk) < chunkCount {
            let part = min(Self.chunkBytes, length - copied)
            (destination + copied).copyMemory(
                from: base + chunkDataAt + Int(chunk) * Self.chunkBytes, byteCount: part)
            copied += part
            chunk = chunkNexts[Int(chunk)]
        }
    }

    // MARK: - Dead holders

    /// The abandonment record a reclaim is adding to.
    struct Record {
        var index: UInt64
        var reason: UInt32
    }

    /// What one step of a reclaim did.
    struct ReclaimStep {
        /// An item went back to the queue.
        var requeued = false
        /// Items counted finished (take them off the unfinished count).
        var abandoned: UInt64 = 0
        /// The slot is empty and free now.
        var finished = false
    }

    /// One step of handing back the items of slot `slot`, whose process died: puts its oldest
    /// item back, or reports items, or frees the slot once it holds nothing. Each step is one
    /// commit, so a reclaimer killed in the middle leaves the rest to the next one.
    func reclaimStep(
        _ slot: Int, closed: Bool, record: inout Record?, _ writes: inout JournalWrites
    ) -> ReclaimStep {
        var step = ReclaimStep()
        let pid = UInt32(truncatingIfNeeded: word(slotField(slot, 0)).load())
        let counts = writes.load(slotField(slot, 16))
        let head = Self.low(writes.load(slotField(slot, 24)))
        if Self.low(counts) == 0 {
            writes.store(slotField(slot, 0), 0)
            writes.store(slotField(slot, 8), 0)
            writes.store(slotField(slot, 16), 0)
            writes.store(slotField(slot, 24), Self.pair(Self.none, Self.none))
            step.finished = true
        } else if !requeues {
            step.abandoned = UInt64(Self.low(counts))
            abandon(step.abandoned, pid: pid, reason: 1, &record, &writes)
            writes.store(slotField(slot, 16), 0)
        } else if isEntry(head) {
            unlink(head, from: slot, &writes)
            writes.store(slotField(slot, 16), counts - 1)
            let kept = writes.load(entryField(head, 8)) != .max
            let deliveries = Self.high(writes.load(entryField(head, 16)))
            if kept && !closed && deliveries < maxDeliveries {
                putBack(head, &writes)
                step.requeued = true
            } else {
                release(head, &writes)
                step.abandoned = 1
                let reason: UInt32 = !kept ? 2 : closed ? 4 : 3
                abandon(1, pid: pid, reason: reason, &record, &writes)
            }
        } else {
            // Only items counted without an entry: never kept.
            step.abandoned = UInt64(Self.low(counts))
            abandon(step.abandoned, pid: pid, reason: 2, &record, &writes)
            writes.store(slotField(slot, 16), 0)
        }
        return step
    }

    /// Appends `entry` to the items put back.
    private func putBack(_ entry: UInt32, _ writes: inout JournalWrites) {
        writes.store(entryField(entry, 0), Self.pair(Self.none, Self.none))
        let ends = writes.load(field(Self.requeuedOffset))
        let tail = Self.high(ends)
        if !isEntry(tail) {
            writes.store(field(Self.requeuedOffset), Self.pair(entry, entry))
        } else {
            writes.store(entryField(tail, 0), Self.pair(entry, Self.none))
            writes.store(field(Self.requeuedOffset), Self.pair(Self.low(ends), entry))
        }
        writes.store(field(Self.requeuedCountOffset), writes.load(field(Self.requeuedCountOffset)) + 1)
        writes.store(field(Self.requeuedTotalOffset), writes.load(field(Self.requeuedTotalOffset)) &+ 1)
    }

    /// Counts `items` abandoned by `pid` for `reason`, in the reclaim's current record or a new one.
    private func abandon(
        _ items: UInt64, pid: UInt32, reason: UInt32, _ record: inout Record?, _ writes: inout JournalWrites
    ) {
        writes.store(
            field(Self.abandonedTotalOffset), writes.load(field(Self.abandonedTotalOffset)) &+ items)
        if let current = record, current.reason == reason {
            let at = recordField(current.index, 8)
            writes.store(at, writes.load(at) &+ items)
            return
        }
        let index = writes.load(field(Self.recordCountOffset))
        writes.store(field(Self.recordCountOffset), index &+ 1)
        writes.store(recordField(index, 0), Self.pair(pid, reason))
        writes.store(recordField(index, 8), items)
        record = Record(index: index, reason: reason)
    }

    private func recordField(_ index: UInt64, _ offset: Int) -> Int {
        area + Self.logOffset + Int(index % UInt64(Self.logRecords)) * Self.recordBytes + offset
    }

    // MARK: - Reports

    /// Where a handle's reports have reached.
    struct ReportCursor: Sendable {
        var items: UInt64 = 0
        var records: UInt64 = 0
    }

    /// The items abandoned since `cursor`, with the records still in the log, or `nil` if none.
    func abandoned(since cursor: ReportCursor) -> (AbandonedItems, ReportCursor)? {
        let total = abandonedTotal
        guard total > cursor.items else { return nil }
        let records = word(field(Self.recordCountOffset)).load()
        let oldest = max(
            cursor.records, records >= UInt64(Self.logRecords) ? records - UInt64(Self.logRecords) : 0)
        var consumers: [AbandonedItems.Consumer] = []
        var index = oldest
        while index < records {
            let who = word(recordField(index, 0)).load()
            let items = Int(clamping: word(recordField(index, 8)).load())
            let pid = Int32(bitPattern: Self.low(who))
            let reason: AbandonedItems.Reason =
                switch Self.high(who) {
                case 2: .notKept
                case 3: .deliveryLimit
                case 4: .queueClosed
                default: .consumerDied
                }
            // A reclaim cut short by a death leaves two records for one consumer: merge them.
            if let same = consumers.firstIndex(where: { $0.pid == pid && $0.reason == reason }) {
                consumers[same].items += items
            } else {
                consumers.append(AbandonedItems.Consumer(pid: pid, items: items, reason: reason))
            }
            index += 1
        }
        let report = AbandonedItems(count: Int(clamping: total - cursor.items), consumers: consumers)
        return (report, ReportCursor(items: total, records: records))
    }
}
