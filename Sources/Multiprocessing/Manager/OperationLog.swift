import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The kinds of shared container, recorded in the segment so a handle cannot be decoded as
/// another kind.
enum ContainerKind: UInt32, Sendable {
    case dictionary = 1
    case list = 2
    case set = 3
    case namespace = 4
}

/// A shared container's replicated operation log: the engine behind ``SharedDictionary``,
/// ``SharedList``, ``SharedSet`` and ``SharedNamespace``.
///
/// There is no server process. The segment holds a lock, one position word (``LogPosition``) and
/// two log regions of `capacity` bytes, of which one is active. Every process keeps a decoded
/// replica of the contents and the log position it has applied:
///
/// - A **read** loads the position word. If it has not moved, the replica answers: no lock, no
///   system call. Otherwise the new bytes are copied out, the word is checked again (a
///   seqlock-style validation against compaction), and the copy is decoded into the replica.
///   Reads never take the lock, so they never wait for a writer, dead or alive.
/// - A **write** takes the lock, catches up, encodes its entries, copies them past the end of
///   the log and publishes the new length with one atomic store, then catches up again (which
///   applies its own entries, exactly as every other process will): O(1) in the contents' size.
///   A writer killed before the store leaves unpublished bytes that the next writer overwrites.
/// - When the active region is full, the writer **compacts**: it writes a snapshot of the
///   contents (plus its entries) into the other region and publishes it as a new generation.
///   The old region stays intact until the compaction after next, so a writer killed mid-way
///   leaves the old generation published (the next lock holder redoes the compaction), and
///   replicas that missed a generation rebuild from the snapshot.
///
/// Segment layout: `[lock: UInt32][owner deaths: UInt32][magic: UInt32][kind: UInt32]`
/// `[capacity: UInt64][position: UInt64]`, padded to 64 bytes, then region 0 and region 1.
final class OperationLog<State: LogState>: @unchecked Sendable {
    static var headerSize: Int { 64 }
    static var magic: UInt32 { 0x314D_504D }  // "MPM1"

    let memory: SharedMemory
    let kind: ContainerKind
    /// The size of each log region in bytes (a multiple of 8).
    let capacity: Int

    private let lock: LockWord
    private let position: UnsafeMutablePointer<Atomic<UInt64>>
    private let replica: Mutex<Replica>

    /// One process's view: the decoded contents and how much of the log they include.
    private struct Replica: Sendable {
        var state = State()
        /// The position word whose log this replica has applied in full.
        var seen = LogPosition.none
        /// The generation whose region `applied` counts bytes of.
        var generation: UInt32 = .max
        /// Bytes of the active region applied so far.
        var applied = 0
        /// A copy of log bytes being applied.
        var scratch: [UInt8] = []
        /// Entries being written.
        var pending = LogEntryWriter()
        /// A snapshot being written by a compaction.
        var snapshot = LogEntryWriter()
        let decoder = BinaryDecoder()
    }

    /// A fresh, empty log in a new segment; `capacity` is rounded up to a multiple of 8.
    convenience init(kind: ContainerKind, capacity: Int) throws(ManagerError) {
        guard capacity >= Manager.minimumCapacity, capacity <= Manager.maximumCapacity else {
            throw .invalidCapacity(capacity)
        }
        let rounded = (capacity + 7) / 8 * 8
        let memory: SharedMemory
        do {
            memory = try SharedMemory(size: Self.headerSize + 2 * rounded)
        } catch {
            throw .memory(error)
        }
        let base = memory.baseAddress
        base.storeBytes(of: Self.magic, toByteOffset: 8, as: UInt32.self)
        base.storeBytes(of: kind.rawValue, toByteOffset: 12, as: UInt32.self)
        base.storeBytes(of: UInt64(rounded), toByteOffset: 16, as: UInt64.self)
        self.init(memory: memory, kind: kind, capacity: rounded)
    }

    private init(memory: SharedMemory, kind: ContainerKind, capacity: Int) {
        self.memory = memory
        self.kind = kind
        self.capacity = capacity
        lock = LockWord(memory.baseAddress)
        position = (memory.baseAddress + 24).assumingMemoryBound(to: Atomic<UInt64>.self)
        replica = Mutex(Replica())
    }

    /// The first byte of `region` in this process.
    private func base(of region: Int) -> UnsafeMutableRawPointer {
        memory.baseAddress + Self.headerSize + region * capacity
    }

    private var deaths: FutexWord { FutexWord(memory.baseAddress + 4) }

    /// How many times a writer took the lock over from a writer that died holding it.
    var ownerDeaths: Int { Int(deaths.load()) }

    /// How many compactions the log has been through (wrapping at 2^31).
    var compactions: Int { Int(LogPosition(raw: position.pointee.load(ordering: .acquiring)).generation) }

    // MARK: - Reading

    /// Runs `body` on the contents, up to date with every write published before the call.
    func read<Result: Sendable>(_ body: (borrowing State) throws(ManagerError) -> Result) throws(ManagerError)
        -> Result
    {
        try replica.withLock { (replica) throws(ManagerError) -> Result in
            try catchUp(&replica)
            return try body(replica.state)
        }
    }

    /// Applies whatever was published since this replica last looked.
    private func catchUp(_ replica: inout Replica) throws(ManagerError) {
        while true {
            let first = LogPosition(raw: position.pointee.load(ordering: .acquiring))
            if first == replica.seen { return }
            let end = first.byteCount
            guard end <= capacity else { throw .corrupted("log length \(end) beyond capacity \(capacity)") }
            let rebuild = first.generation != replica.generation || end < replica.applied
            let start = rebuild ? 0 : replica.applied
            var scratch = replica.scratch
            scratch.removeAll(keepingCapacity: true)
            scratch.append(
                contentsOf: UnsafeRawBufferPointer(start: base(of: first.region) + start, count: end - start))
            // The copy counts only if no compaction began overwriting the region meanwhile.
            atomicMemoryFence(ordering: .acquiring)
            let second = LogPosition(raw: position.pointee.load(ordering: .relaxed))
            guard first.regionIntact(at: second) else {
                replica.scratch = scratch
                continue
            }
            if rebuild {
                replica.state = State()
                replica.generation = first.generation
                replica.applied = 0
            }
            defer { replica.scratch = scratch }
            let applied = scratch.withUnsafeBytes { bytes in
                Result { () throws(ManagerError) in
                    try LogEntry.forEach(in: bytes, decoder: replica.decoder) {
                        (entry, entryEnd) throws(ManagerError) in
                        try replica.state.apply(&entry)
                        replica.applied = start + entryEnd
                    }
                }
            }
            try applied.get()
            replica.seen = first
            return
        }
    }

    // MARK: - Writing

    /// Runs `body` holding the container's lock, on contents that no other process can change
    /// meanwhile; the entries it writes are then published together and applied. Nothing is
    /// published if `body` throws.
    func write<Result: Sendable>(
        _ body: (borrowing State, inout LogEntryWriter) throws(ManagerError) -> Result
    ) throws(ManagerError) -> Result {
        try replica.withLock { (replica) throws(ManagerError) -> Result in
            let result: Result
            acquire()
            do throws(ManagerError) {
                try catchUp(&replica)
                if LogPosition(raw: position.pointee.load(ordering: .acquiring)).isCompacting {
                    // A writer died compacting: finish its work before adding ours.
                    replica.pending.removeAll()
                    try compact(&replica)
                    try catchUp(&replica)
                }
                replica.pending.removeAll()
                result = try body(replica.state, &replica.pending)
                if !replica.pending.isEmpty { try publish(&replica) }
            } catch {
                lock.unlock()
                throw error
            }
            lock.unlock()
            try catchUp(&replica)
            return result
        }
    }

    private func acquire() {
        if case .ownerDied = lock.lock(until: .never) { _ = deaths.add(1) }
    }

    /// Appends the pending entries to the active region, or compacts if they do not fit.
    private func publish(_ replica: inout Replica) throws(ManagerError) {
        let current = LogPosition(raw: position.pointee.load(ordering: .acquiring))
        let start = current.byteCount
        let count = replica.pending.count
        guard start + count <= capacity else { return try compact(&replica) }
        replica.pending.bytes.withUnsafeBytes { bytes in
            (base(of: current.region) + start).copyMemory(from: bytes.baseAddress!, byteCount: count)
        }
        #if DEBUG
            LogTestHooks.reached(.entryWritten)
        #endif
        let next = LogPosition(sequence: current.sequence, words: UInt32((start + count) / 8))
        position.pointee.store(next.raw, ordering: .releasing)
    }

    /// Writes the contents (the replica, caught up under the lock) and the pending entries into
    /// the inactive region, then publishes that region as the next generation. Throws
    /// ``ManagerError/capacityExceeded(needed:capacity:)`` with nothing changed if they do not
    /// fit.
    private func compact(_ replica: inout Replica) throws(ManagerError) {
        replica.snapshot.removeAll()
        try replica.state.writeSnapshot(to: &replica.snapshot)
        let needed = replica.snapshot.count + replica.pending.count
        guard needed <= capacity else { throw .capacityExceeded(needed: needed, capacity: capacity) }
        var current = LogPosition(raw: position.pointee.load(ordering: .acquiring))
        if !current.isCompacting {
            current = LogPosition(sequence: current.sequence &+ 1, words: current.words)
            position.pointee.store(current.raw, ordering: .releasing)
        }
        // Readers must see the odd sequence before any byte of the region changes.
        atomicMemoryFence(ordering: .acquiringAndReleasing)
        let target = base(of: 1 - current.region)
        replica.snapshot.bytes.withUnsafeBytes { bytes in
            if bytes.count > 0 { target.copyMemory(from: bytes.baseAddress!, byteCount: bytes.count) }
        }
        #if DEBUG
            LogTestHooks.reached(.compacting)
        #endif
        replica.pending.bytes.withUnsafeBytes { bytes in
            if bytes.count > 0 {
                (target + replica.snapshot.count).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
            }
        }
        release(target, from: needed)
        let next = LogPosition(sequence: current.sequence &+ 1, words: UInt32(needed / 8))
        position.pointee.store(next.raw, ordering: .releasing)
        // The replica already holds the snapshot: only the pending entries remain to apply.
        replica.generation = next.generation
        replica.applied = replica.snapshot.count
        replica.seen = LogPosition(sequence: next.sequence, words: UInt32(replica.snapshot.count / 8))
    }

    /// Gives the pages of a region past `offset` back to the system (stale bytes of an older
    /// generation that nobody may read any more); they read as zeros if touched again.
    private func release(_ region: UnsafeMutableRawPointer, from offset: Int) {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let regionStart = Int(bitPattern: region)
        let first = (regionStart + offset + page - 1) / page * page
        let last = (regionStart + capacity) / page * page
        guard last > first, let start = UnsafeMutableRawPointer(bitPattern: first) else { return }
        #if canImport(Glibc)
            _ = madvise(start, last - first, MADV_REMOVE)
        #endif
    }

    // MARK: - Handles

    /// Encodes the segment (its descriptor travels with the message), the kind, the capacity
    /// and the contents' type, so a receiver cannot map it as something else.
    func encode(to encoder: any Encoder) throws {
        var container = encoder.unkeyedContainer()
        try container.encode(memory)
        try container.encode(kind.rawValue)
        try container.encode(capacity)
        try container.encode(String(reflecting: State.self))
    }

    /// Maps a log sent by ``encode(to:)``, checking that it is a `kind` log of `State`.
    convenience init(from decoder: any Decoder, kind: ContainerKind) throws {
        var container = try decoder.unkeyedContainer()
        let memory = try container.decode(SharedMemory.self)
        let sentKind = try container.decode(UInt32.self)
        let capacity = try container.decode(Int.self)
        let type = try container.decode(String.self)
        let base = memory.baseAddress
        guard sentKind == kind.rawValue, type == String(reflecting: State.self), capacity % 8 == 0,
            capacity >= 8, memory.size == Self.headerSize + 2 * capacity,
            base.load(fromByteOffset: 8, as: UInt32.self) == Self.magic,
            base.load(fromByteOffset: 12, as: UInt32.self) == kind.rawValue,
            base.load(fromByteOffset: 16, as: UInt64.self) == UInt64(capacity)
        else {
            throw ManagerError.corrupted(
                "a \(kind) log of \(State.self) sent as kind \(sentKind) of \(type), capacity \(capacity), in a \(memory.size)-byte segment"
            )
        }
        self.init(memory: memory, kind: kind, capacity: capacity)
    }
}

#if DEBUG
    /// Points inside a write where tests can stop a writer (to kill it there).
    enum LogTestHooks {
        enum Stage: Sendable { case entryWritten, compacting }

        nonisolated(unsafe) static var pause: (@Sendable (Stage) -> Void)?

        static func reached(_ stage: Stage) { pause?(stage) }
    }
#endif
