import Synchronization

/// A shared container's replicated operation log: the engine behind ``SharedDictionary``,
/// ``SharedList``, ``SharedSet`` and ``SharedNamespace``.
///
/// There is no server process. The ``LogSegment`` holds a lock, one position word
/// (``LogPosition``) and two log regions, of which one is active. Every process keeps a decoded
/// replica of the contents and the log position it has applied:
///
/// - A **read** loads the position word. If it has not moved, the replica answers: no lock, no
///   system call. Otherwise the new bytes are copied out, the word is checked again (a
///   seqlock-style validation against compaction), and the copy is decoded into the replica.
///   Reads never take the lock, so they never wait for a writer, dead or alive.
/// - A **write** takes the lock, catches up, encodes its entries, copies them past the end of
///   the log and publishes the new length with one atomic store, then catches up again (which
///   applies its own entries exactly as every other process will): O(1) in the contents' size.
///   A writer killed before the store leaves unpublished bytes that the next writer overwrites.
/// - When the active region is full, the writer **compacts**: it writes a snapshot of the
///   contents (plus its entries) into the other region and publishes it as a new generation.
///   The old region stays intact until the compaction after next, so a writer killed mid-way
///   leaves the old generation published (the next writer redoes the compaction), and replicas
///   that missed a generation rebuild from the snapshot.
///
/// The generic half is inlinable so that it is specialized for the caller's types: a read that
/// finds nothing new is a load, a comparison and a hash lookup.
@usableFromInline
final class OperationLog<State: LogState>: Sendable {
    @usableFromInline let segment: LogSegment
    @usableFromInline let replica: Mutex<Replica>

    /// One process's view: the decoded contents and how much of the log they include.
    @usableFromInline
    struct Replica: Sendable {
        @usableFromInline var state = State()
        /// The position word whose log this replica has applied in full.
        @usableFromInline var seen = LogPosition.none
        /// The generation whose region `applied` counts bytes of.
        @usableFromInline var generation: UInt32 = .max
        /// Bytes of the active region applied so far.
        @usableFromInline var applied = 0
        /// A copy of log bytes being applied.
        @usableFromInline var scratch: [UInt8] = []
        /// Entries being written.
        @usableFromInline var pending = LogEntryWriter()
        /// A snapshot being written by a compaction.
        @usableFromInline var snapshot = LogEntryWriter()
        @usableFromInline let decoder = BinaryDecoder()

        @usableFromInline init() {}
    }

    /// A fresh, empty log in a new segment.
    init(kind: ContainerKind, capacity: Int) throws(ManagerError) {
        segment = try LogSegment(kind: kind, capacity: capacity)
        replica = Mutex(Replica())
    }

    /// Buffers larger than this (after a rebuild or a compaction) are freed after use rather
    /// than kept for the next time.
    @inlinable static var keptBufferSize: Int { 1 << 20 }

    /// The size of each log region in bytes.
    @usableFromInline var capacity: Int { segment.capacity }

    /// How many times a writer took the lock over from a writer that died holding it.
    var ownerDeaths: Int { segment.ownerDeaths }

    /// How many compactions the log has been through.
    var compactions: Int { segment.compactions }

    // MARK: Reading

    /// Runs `body` on the contents, up to date with every write published before the call.
    @inlinable
    func read<Result: Sendable>(_ body: (borrowing State) throws(ManagerError) -> Result) throws(ManagerError)
        -> Result
    {
        try replica.withLock { (replica) throws(ManagerError) -> Result in
            try catchUp(&replica)
            return try body(replica.state)
        }
    }

    /// Applies whatever was published since this replica last looked.
    @inlinable
    func catchUp(_ replica: inout Replica) throws(ManagerError) {
        while true {
            let position = segment.position
            if position == replica.seen { return }
            let rebuild = position.generation != replica.generation || position.byteCount < replica.applied
            let start = rebuild ? 0 : replica.applied
            // Taken out (not copied) so that reusing its storage needs no copy-on-write.
            var scratch: [UInt8] = []
            swap(&scratch, &replica.scratch)
            defer { swap(&scratch, &replica.scratch) }
            // The copy counts only if no compaction began overwriting the region meanwhile.
            guard try segment.copy(position, from: start, into: &scratch) else { continue }
            if rebuild {
                replica.state = State()
                replica.generation = position.generation
                replica.applied = 0
            }
            let applied = scratch.withUnsafeBytes { bytes in
                Result { () throws(ManagerError) in
                    try LogEntry.forEach(in: bytes, decoder: replica.decoder) {
                        (entry, end) throws(ManagerError) in
                        try replica.state.apply(&entry)
                        replica.applied = start + end
                    }
                }
            }
            try applied.get()
            replica.seen = position
            if scratch.capacity > Self.keptBufferSize { scratch = [] }
            return
        }
    }

    // MARK: Writing

    /// Runs `body` holding the container's lock, on contents that no other process can change
    /// meanwhile; the entries it writes are then published together and applied. Nothing is
    /// published if `body` throws.
    ///
    /// The shared lock is taken before this process's replica, so that readers in this process
    /// never wait while a writer here waits for another process.
    @inlinable
    func write<Result: Sendable>(
        _ body: (borrowing State, inout LogEntryWriter) throws(ManagerError) -> Result
    ) throws(ManagerError) -> Result {
        segment.lockForWriting()
        return try replica.withLock { (replica) throws(ManagerError) -> Result in
            let result: Result
            do throws(ManagerError) {
                try catchUp(&replica)
                replica.pending.removeAll()
                if segment.position.isCompacting {
                    // A writer died compacting: finish its work before adding ours.
                    try compact(&replica)
                }
                result = try body(replica.state, &replica.pending)
                if !replica.pending.isEmpty && !segment.append(replica.pending.bytes) {
                    try compact(&replica)
                }
            } catch {
                segment.unlock()
                throw error
            }
            segment.unlock()
            if replica.pending.bytes.capacity > Self.keptBufferSize { replica.pending = LogEntryWriter() }
            try catchUp(&replica)
            return result
        }
    }

    /// Publishes the contents (the replica, caught up under the lock) followed by the pending
    /// entries as the next generation.
    @inlinable
    func compact(_ replica: inout Replica) throws(ManagerError) {
        replica.snapshot.removeAll()
        try replica.state.writeSnapshot(to: &replica.snapshot)
        let end = try segment.compact(snapshot: replica.snapshot.bytes, then: replica.pending.bytes)
        if replica.snapshot.bytes.capacity > Self.keptBufferSize { replica.snapshot = LogEntryWriter() }
        // The replica already holds the snapshot: only the pending entries remain to apply.
        replica.generation = end.generation
        replica.applied = end.byteCount
        replica.seen = end
    }

    // MARK: Handles

    /// Encodes the segment (its descriptor travels with the message), with the contents' type.
    func encode(to encoder: any Encoder) throws {
        try segment.encode(to: encoder, type: String(reflecting: State.self))
    }

    /// Maps a log sent by ``encode(to:)``, checking that it is a `kind` log of `State`.
    init(from decoder: any Decoder, kind: ContainerKind) throws {
        segment = try LogSegment(from: decoder, kind: kind, type: String(reflecting: State.self))
        replica = Mutex(Replica())
    }
}
