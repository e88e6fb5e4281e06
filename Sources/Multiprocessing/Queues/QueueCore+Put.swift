import CMultiprocessing
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

// Putting: room is waited for under the lock's rules, the entry is written into the ring and
// committed through the journal, and a sleeping consumer is woken.
extension QueueCore {
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
                telemetry?.depth(approximateCount)
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
}
