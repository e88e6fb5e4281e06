import Synchronization

/// A 64-bit atomic word in a queue's shared header.
struct SharedWord64: @unchecked Sendable {
    let atomic: UnsafeMutablePointer<Atomic<UInt64>>

    init(_ address: UnsafeMutableRawPointer) {
        atomic = address.assumingMemoryBound(to: Atomic<UInt64>.self)
    }

    /// A read under the queue lock, or an approximate one without it.
    @inline(__always) func load() -> UInt64 { atomic.pointee.load(ordering: .acquiring) }

    /// A write that stays after every write before it (the commit order a process killed in
    /// the middle relies on).
    @inline(__always) func store(_ value: UInt64) { atomic.pointee.store(value, ordering: .releasing) }
}

/// Where everything lives in a queue's segment: a header of counters, then the ring, then (for a
/// ``JoinableQueue``) the record of who holds which items (``QueueHolders``).
///
/// Every field is read and written under the queue's lock (word 0), except that waiters read
/// the counters and the futex words without it while they spin or sleep. A change that takes
/// several stores (a put moves the write position, the put count and the unfinished count) is
/// first written to the journal and marked valid, then applied, then the mark is cleared: a
/// process killed in between leaves either the old state or a valid journal that the next
/// holder (recovering the lock from the dead one) applies. Nothing half-written is ever seen. A
/// commit that also changes the holder record marks the journal 2 instead of 1: its extra word
/// writes (``JournalWrites``) are applied with the state.
enum QueueLayout {
    // Line 0: the lock and everything a put or get reads.
    static let lock = 0  // u32: LockWord
    static let notEmptySequence = 4  // u32 futex: bumped when an item arrives for a sleeper
    static let notFullSequence = 8  // u32 futex: bumped when room appears for a sleeper
    static let notEmptyWaiters = 12  // u32: getters registered to sleep
    static let notFullWaiters = 16  // u32: putters registered to sleep
    static let closed = 20  // u32: 1 once closed
    static let state = 24  // QueueState, 5 x u64 (ends at 64)

    // Line 1: the journal, join, recovery.
    static let journalValid = 64  // u32: 1 while `journal` holds a state being applied
    static let joinSequence = 68  // u32 futex: bumped when the unfinished count reaches 0
    static let joinWaiters = 72  // u32
    static let recoveries = 76  // u32: locks taken over from a dead holder
    static let fruitlessWakes = 80  // u32: wakes of getters in a row that found no sleeper
    static let fruitlessFullWakes = 84  // u32: the same for putters
    static let journal = 88  // QueueState, 5 x u64 (ends at 128)

    // Line 2: large items.
    static let nextLargeSequence = 128  // u64: the next large item's number
    static let skippedItems = 136  // u64: large items whose descriptor never arrived

    // Line 2: constants, written once by the creator.
    static let magic = 192  // u64
    static let ringBytes = 200  // u64
    static let capacity = 208  // u64, 0 = no item limit
    static let maximumInline = 216  // u64: larger encoded items travel as a descriptor
    /// u64: where a ``JoinableQueue``'s record of held items (``QueueHolders``) starts, after
    /// the ring; 0 for a queue without one.
    static let holdersArea = 224

    /// Where the ring starts.
    static let headerBytes = 256

    static let magicValue: UInt64 = 0x5155_4555_4d50_0001  // "QUEUMP" v1

    // Records in the ring: an 8-byte header (u32 payload length, u32 kind), the payload,
    // padding to 8 bytes.
    static let recordHeader = 8
    static let inlineKind: UInt32 = 1
    static let largeKind: UInt32 = 2
    /// The rest of the ring up to its end is unused: the next record is at its start.
    static let wrapKind: UInt32 = 3
    /// A large record's payload: the item's number and its byte length.
    static let largePayload = 16

    @inline(__always) static func recordSize(payload: Int) -> Int {
        recordHeader + ((payload + 7) & ~7)
    }
}

/// The queue's positions and counters, as one unit that a commit replaces.
struct QueueState: Equatable {
    /// Bytes consumed since creation (the ring offset is this modulo the ring size).
    var readPosition: UInt64
    /// Bytes produced since creation.
    var writePosition: UInt64
    /// Items put since creation.
    var putCount: UInt64
    /// Items taken since creation.
    var getCount: UInt64
    /// Items put and not yet marked done (`JoinableQueue`).
    var unfinished: UInt64

    static let words = 5

    init(
        readPosition: UInt64, writePosition: UInt64, putCount: UInt64, getCount: UInt64,
        unfinished: UInt64
    ) {
        self.readPosition = readPosition
        self.writePosition = writePosition
        self.putCount = putCount
        self.getCount = getCount
        self.unfinished = unfinished
    }

    init(at address: UnsafeMutableRawPointer) {
        readPosition = SharedWord64(address).load()
        writePosition = SharedWord64(address + 8).load()
        putCount = SharedWord64(address + 16).load()
        getCount = SharedWord64(address + 24).load()
        unfinished = SharedWord64(address + 32).load()
    }

    func store(at address: UnsafeMutableRawPointer) {
        SharedWord64(address).store(readPosition)
        SharedWord64(address + 8).store(writePosition)
        SharedWord64(address + 16).store(putCount)
        SharedWord64(address + 24).store(getCount)
        SharedWord64(address + 32).store(unfinished)
    }

    var count: UInt64 { putCount &- getCount }
    var usedBytes: UInt64 { writePosition &- readPosition }
}
