/// Word writes that belong to one queue commit besides its ``QueueState`` (a ``JoinableQueue``'s
/// record of who holds what), gathered under the queue's lock in the segment's journal area.
///
/// They are written to the journal first, then marked valid with the state, then applied: a
/// process killed at any point leaves either none of them or a journal that the next holder of
/// the lock applies again (each write stores a value, so applying twice is harmless). Reads go
/// through ``load(_:)`` so that a change sees its own pending writes.
struct JournalWrites {
    /// The segment's base; offsets are from it.
    let base: UnsafeMutableRawPointer
    /// Where the write count is; the (offset, value) pairs follow it.
    let area: Int
    /// Pairs the area holds.
    let capacity: Int
    private(set) var count = 0

    init(base: UnsafeMutableRawPointer, area: Int, capacity: Int) {
        self.base = base
        self.area = area
        self.capacity = capacity
    }

    @inline(__always) private func pair(_ index: Int) -> (offset: SharedWord64, value: SharedWord64) {
        let address = base + area + 8 + index * 16
        return (SharedWord64(address), SharedWord64(address + 8))
    }

    /// The word at `offset` as this change leaves it so far.
    @inline(__always) func load(_ offset: Int) -> UInt64 {
        var index = count - 1
        while index >= 0 {
            let (at, value) = pair(index)
            if at.load() == UInt64(offset) { return value.load() }
            index -= 1
        }
        return SharedWord64(base + offset).load()
    }

    /// Sets the word at `offset` as part of this change. A word set twice is logged twice (the
    /// later write wins when they are applied in order): cheaper than looking for it.
    @inline(__always) mutating func store(_ offset: Int, _ value: UInt64) {
        // The changes are bounded by construction; more would be a bug in this file's callers.
        precondition(count < capacity, "a queue commit with more than \(capacity) writes")
        let (at, slot) = pair(count)
        at.store(UInt64(offset))
        slot.store(value)
        count += 1
    }

    /// Low and high halves of a word.
    @inline(__always) static func low(_ word: UInt64) -> UInt32 { UInt32(truncatingIfNeeded: word) }
    @inline(__always) static func high(_ word: UInt64) -> UInt32 { UInt32(truncatingIfNeeded: word >> 32) }
    @inline(__always) static func word(low: UInt32, high: UInt32) -> UInt64 {
        UInt64(low) | UInt64(high) << 32
    }

    /// Records how many writes the journal holds (before it is marked valid).
    @inline(__always) func seal() { SharedWord64(base + area).store(UInt64(count)) }

    /// Applies the writes (after the journal is marked valid).
    @inline(__always) func apply() {
        for index in 0..<count {
            let (at, value) = pair(index)
            SharedWord64(base + Int(at.load())).store(value.load())
        }
    }

    /// Applies the sealed journal at `area` again, as the next holder of the lock does after a
    /// process died in the middle of a commit. Writes outside the segment are ignored (the
    /// journal was overwritten by someone else).
    static func replay(base: UnsafeMutableRawPointer, area: Int, capacity: Int, segmentBytes: Int) {
        let count = Int(clamping: SharedWord64(base + area).load())
        guard count <= capacity else { return }
        for index in 0..<count {
            let address = base + area + 8 + index * 16
            let offset = SharedWord64(address).load()
            guard offset % 8 == 0, offset <= UInt64(segmentBytes - 8) else { continue }
            SharedWord64(base + Int(offset)).store(SharedWord64(address + 8).load())
        }
    }
}
