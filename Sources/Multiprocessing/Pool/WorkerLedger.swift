import Synchronization

/// A page of shared memory in which a pool worker records what it is doing, so that when it
/// dies — even by `SIGKILL`, which leaves no chance to say anything — its driver knows whether
/// it was starting, running its initializer, idle, or running one particular item.
///
/// Two words: the worker's stage, and an item word `n << 1 | running` where `n` counts the items
/// of every job the worker was sent, in the order they were sent. The driver numbers the items
/// it sends the same way, so the item that was running when the worker died — the only one to
/// blame — is known exactly, and every other unanswered item goes back to the queue.
struct WorkerLedger: Codable, Sendable {
    /// Where a worker is in its life. Only the worker writes the ledger; the driver reads it
    /// once the worker is gone.
    enum Stage: UInt64 {
        /// Not yet at its job loop (the driver's initial value): a death here is nobody's fault.
        case starting = 0
        /// Running the pool's initializer.
        case initializing = 1
        /// Waiting for a frame.
        case idle = 2
        /// Reading a frame, encoding or sending answers: outside any item.
        case busy = 3
    }

    let memory: SharedMemory

    /// A fresh ledger in `.starting`.
    init() throws(SharedMemoryError) {
        memory = try SharedMemory(size: 64)
    }

    private var stageWord: UnsafeMutablePointer<Atomic<UInt64>> {
        memory.baseAddress.assumingMemoryBound(to: Atomic<UInt64>.self)
    }

    /// The worker's progress through items.
    var progress: _ItemProgress {
        _ItemProgress(
            word: (memory.baseAddress + 8).assumingMemoryBound(to: Atomic<UInt64>.self))
    }

    var stage: Stage {
        get { Stage(rawValue: stageWord.pointee.load(ordering: .acquiring)) ?? .busy }
        nonmutating set { stageWord.pointee.store(newValue.rawValue, ordering: .releasing) }
    }

    /// The item that was running, counted from the worker's first item; `nil` between items.
    var runningItem: UInt64? {
        let word = progress.word.pointee.load(ordering: .acquiring)
        return word & 1 == 1 ? word >> 1 : nil
    }
}

/// Where a worker records that an item starts and ends (see `WorkerLedger`). Used by the
/// inlinable item loop ``ProcessFunction/_callJobs(_:itemEnds:from:until:progress:into:failures:)``.
/// Not API: public only because that requirement names it, with nothing public to call.
public struct _ItemProgress: @unchecked Sendable {
    @usableFromInline let word: UnsafeMutablePointer<Atomic<UInt64>>
    /// How many items the worker had been sent before the current run.
    @usableFromInline var base: UInt64 = 0

    init(word: UnsafeMutablePointer<Atomic<UInt64>>) {
        self.word = word
    }

    /// Item `item` of the current run starts.
    @inlinable @inline(__always)
    func begin(_ item: Int) {
        word.pointee.store((base &+ UInt64(item)) << 1 | 1, ordering: .relaxed)
    }

    /// Item `item` of the current run has ended (its answer is in the worker's hands).
    @inlinable @inline(__always)
    func end(_ item: Int) {
        word.pointee.store((base &+ UInt64(item)) << 1, ordering: .relaxed)
    }
}
