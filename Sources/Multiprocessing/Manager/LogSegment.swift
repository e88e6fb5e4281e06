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

/// The shared memory of a container's operation log and everything done to it byte by byte: the
/// non-generic half of ``OperationLog``.
///
/// Layout: `[lock: UInt32][owner deaths: UInt32][magic: UInt32][kind: UInt32]`
/// `[capacity: UInt64][position: UInt64]`, padded to 64 bytes, then region 0 and region 1 of
/// `capacity` bytes each. The position word (``LogPosition``) says which region is active and
/// how much of it is valid; writers change it with single atomic stores, holding the lock.
@usableFromInline
final class LogSegment: @unchecked Sendable {
    static var headerSize: Int { 64 }
    static var magic: UInt32 { 0x314D_504D }  // "MPM1"

    let memory: SharedMemory
    let kind: ContainerKind
    /// The size of each region in bytes (a multiple of 8).
    @usableFromInline let capacity: Int

    private let lock: LockWord
    private let word: UnsafeMutablePointer<Atomic<UInt64>>

    /// A fresh segment with an empty log; `capacity` is rounded up to a multiple of 8.
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
        word = (memory.baseAddress + 24).assumingMemoryBound(to: Atomic<UInt64>.self)
    }

    /// The first byte of `region` in this process.
    private func base(of region: Int) -> UnsafeMutableRawPointer {
        memory.baseAddress + Self.headerSize + region * capacity
    }

    private var deaths: FutexWord { FutexWord(memory.baseAddress + 4) }

    /// How many times a writer took the lock over from a writer that died holding it.
    var ownerDeaths: Int { Int(deaths.load()) }

    /// How many compactions the log has been through (wrapping at 2^31).
    var compactions: Int { Int(position.generation) }

    // MARK: Reading

    /// The published position (an acquiring load: the bytes it covers are visible).
    @usableFromInline var position: LogPosition {
        LogPosition(raw: word.pointee.load(ordering: .acquiring))
    }

    /// Copies bytes `start..<position.byteCount` of `position`'s region into `buffer` (replacing
    /// its contents); returns `false` if a compaction began overwriting that region meanwhile, so
    /// that the copy is worthless. Needs no lock.
    @usableFromInline
    func copy(_ position: LogPosition, from start: Int, into buffer: inout [UInt8]) throws(ManagerError)
        -> Bool
    {
        let end = position.byteCount
        guard end <= capacity, start <= end else {
            throw .corrupted("log length \(end) beyond capacity \(capacity)")
        }
        buffer.removeAll(keepingCapacity: true)
        buffer.append(
            contentsOf: UnsafeRawBufferPointer(start: base(of: position.region) + start, count: end - start))
        atomicMemoryFence(ordering: .acquiring)
        return position.regionIntact(at: LogPosition(raw: word.pointee.load(ordering: .relaxed)))
    }

    // MARK: Writing (holding the lock)

    /// Takes the lock, waiting as long as it takes (writers hold it for microseconds; a dead
    /// holder is detected within about 50 ms and its lock taken over).
    @usableFromInline func lockForWriting() {
        if case .ownerDied = lock.lock(until: .never) { _ = deaths.add(1) }
    }

    @usableFromInline func unlock() { lock.unlock() }

    /// Appends `entries` to the active region and publishes them; `false` (and nothing done) if
    /// they do not fit.
    @usableFromInline func append(_ entries: [UInt8]) -> Bool {
        let current = position
        let start = current.byteCount
        guard start + entries.count <= capacity else { return false }
        entries.withUnsafeBytes { bytes in
            (base(of: current.region) + start).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
        }
        #if DEBUG
            LogTestHooks.reached(.entryWritten)
        #endif
        let next = LogPosition(sequence: current.sequence, words: UInt32((start + entries.count) / 8))
        word.pointee.store(next.raw, ordering: .releasing)
        return true
    }

    /// Writes `snapshot` then `entries` at the start of the inactive region and publishes that
    /// region as the next generation. Returns the position just past the snapshot. Throws
    /// ``ManagerError/capacityExceeded(needed:capacity:)``, with nothing changed, if they do not
    /// fit.
    ///
    /// The old region stays as it was, so a writer killed here leaves the old generation
    /// published; the sequence is odd meanwhile, which tells the next writer to compact again
    /// and readers that the inactive region is being written.
    @usableFromInline func compact(snapshot: [UInt8], then entries: [UInt8]) throws(ManagerError)
        -> LogPosition
    {
        let needed = snapshot.count + entries.count
        guard needed <= capacity else { throw .capacityExceeded(needed: needed, capacity: capacity) }
        var current = position
        if !current.isCompacting {
            current = LogPosition(sequence: current.sequence &+ 1, words: current.words)
            word.pointee.store(current.raw, ordering: .releasing)
        }
        // Readers must see the odd sequence before any byte of the region changes.
        atomicMemoryFence(ordering: .acquiringAndReleasing)
        let target = base(of: 1 - current.region)
        snapshot.withUnsafeBytes { bytes in
            if bytes.count > 0 { target.copyMemory(from: bytes.baseAddress!, byteCount: bytes.count) }
        }
        #if DEBUG
            LogTestHooks.reached(.compacting)
        #endif
        entries.withUnsafeBytes { bytes in
            if bytes.count > 0 {
                (target + snapshot.count).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
            }
        }
        release(target, from: needed)
        let sequence = current.sequence &+ 1
        word.pointee.store(
            LogPosition(sequence: sequence, words: UInt32(needed / 8)).raw, ordering: .releasing)
        return LogPosition(sequence: sequence, words: UInt32(snapshot.count / 8))
    }

    /// Gives the pages of a region past `offset` back to the system (stale bytes of an older
    /// generation that nobody may read any more); they read as zeros if touched again.
    private func release(_ region: UnsafeMutableRawPointer, from offset: Int) {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let regionStart = Int(bitPattern: region)
        let first = (regionStart + offset + page - 1) / page * page
        let last = (regionStart + capacity) / page * page
        guard last > first, let start = UnsafeMutableRawPointer(bitPattern: first) else { return }
        // Only memory given back: pages kept (a system that cannot) hold bytes nobody reads.
        try? Syscall.discardPages(start, last - first)
    }

    // MARK: Handles

    /// Encodes the segment (its descriptor travels with the message), the kind, the capacity
    /// and the contents' type, so a receiver cannot map it as something else.
    func encode(to encoder: any Encoder, type: String) throws {
        var container = encoder.unkeyedContainer()
        try container.encode(memory)
        try container.encode(kind.rawValue)
        try container.encode(capacity)
        try container.encode(type)
    }

    /// Maps a segment sent by ``encode(to:type:)``, checking that it holds a `kind` log of
    /// `type`.
    convenience init(from decoder: any Decoder, kind: ContainerKind, type: String) throws {
        var container = try decoder.unkeyedContainer()
        let memory = try container.decode(SharedMemory.self)
        let sentKind = try container.decode(UInt32.self)
        let capacity = try container.decode(Int.self)
        let sentType = try container.decode(String.self)
        let base = memory.baseAddress
        // The capacity is checked against the segment before any arithmetic on it: a forged one
        // must be refused, not overflow.
        guard sentKind == kind.rawValue, sentType == type, capacity % 8 == 0, capacity >= 8,
            capacity <= (memory.size - Self.headerSize) / 2,
            memory.size == Self.headerSize + 2 * capacity,
            base.load(fromByteOffset: 8, as: UInt32.self) == Self.magic,
            base.load(fromByteOffset: 12, as: UInt32.self) == kind.rawValue,
            base.load(fromByteOffset: 16, as: UInt64.self) == UInt64(capacity)
        else {
            throw ManagerError.corrupted(
                "a \(kind) log of \(type) sent as kind \(sentKind) of \(sentType), capacity \(capacity), in a \(memory.size)-byte segment"
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
