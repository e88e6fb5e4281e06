import CMultiprocessing
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

// Getting: the oldest entry is copied out (or decoded in place) and only then committed, so a
// consumer killed at any point leaves the item in the queue.
extension QueueCore {
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
                        Syscall.close(message.descriptor)
                        commit(next, between: { sockets.discard() })
                        finishTake()
                        throw error
                    }
                    Syscall.close(message.descriptor)
                    commit(next, between: { sockets.discard() })
                    finishTake()
                    return value
                case .skipped:
                    finishTake()
                    telemetry.largeItemLost()
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
                        Syscall.close(message.descriptor)
                        commit(next, between: { sockets.discard() })
                        finishTake()
                        throw error
                    }
                    Syscall.close(message.descriptor)
                    commit(next, writes, between: { sockets.discard() })
                    finishTake()
                    return value
                case .skipped:
                    finishTake()
                    telemetry.largeItemLost()
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
    func waitForOtherSide(
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
        telemetry?.depth(approximateCount)
    }

    /// Under the lock: whether a drop (an undecodable or lost item, counted done) has just
    /// finished the last unfinished item while someone waits in `join`.
    @inline(__always) func joinersToWake() -> Bool {
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
}
