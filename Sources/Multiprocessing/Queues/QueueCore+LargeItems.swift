import CMultiprocessing
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

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
        if descriptor >= 0 { Syscall.close(descriptor) }
    }
}

// An item larger than the ring takes travels as anonymous memory of its own: the producer
// writes it outside the lock and sends the descriptor over the queue's sockets; the consumer
// that takes its ring entry receives the descriptor, maps the memory and decodes in place.
extension QueueCore {
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
        let fd: Int32
        do throws(SystemError) {
            fd = try Syscall.memfdCreate("swift-multiprocessing-queue-item", size: length)
        } catch {
            throw .system(error)
        }
        do {
            try Self.write(head, to: fd, at: 0)
            try Self.write(body, to: fd, at: head.count)
        } catch {
            Syscall.close(fd)
            throw error
        }
        return OutgoingItem(bytes: [], descriptor: fd, length: length)
    }

    private static func write(_ bytes: UnsafeRawBufferPointer, to fd: Int32, at offset: Int)
        throws(QueueError)
    {
        var written = 0
        while written < bytes.count {
            do {
                written += try Syscall.pwrite(
                    fd, bytes.baseAddress! + written, bytes.count - written, at: offset + written)
            } catch {
                throw .system(error)
            }
        }
    }

    /// Peeks for large item `number`'s message, removing older ones left by killed consumers.
    /// `nil` when it is missing.
    func findMessage(number: UInt64, size: UInt64) throws(QueueError) -> QueueSockets.Message? {
        while let message = try sockets.peek() {
            if message.sequence < number {
                // Left by a consumer killed between its commit and its receive.
                Syscall.close(message.descriptor)
                sockets.discard()
                continue
            }
            guard message.sequence == number, message.length == size else {
                Syscall.close(message.descriptor)
                return nil
            }
            return message
        }
        return nil
    }

    /// Maps a large item's memory and decodes it; `keep` sees its bytes after a successful
    /// decode, before they are unmapped.
    func mapAndDecode<T>(
        _ fd: Int32, size: UInt64, _ decode: (UnsafeRawBufferPointer) throws(CodecError) -> T,
        keep: (UnsafeRawBufferPointer) -> Void = { _ in }
    ) throws(QueueError) -> T {
        let address: UnsafeMutableRawPointer
        do throws(SystemError) {
            // A descriptor shorter than the item it claims to hold is refused before mapping
            // (touching a mapped page past its end would raise SIGBUS).
            guard size > 0, try Syscall.fileSize(fd) >= Int(clamping: size) else {
                throw SystemError("mmap (an item's memory is shorter than its size)", errno: .invalidArgument)
            }
            address = try Syscall.mapReadOnlyPopulated(fd, Int(size))
        } catch {
            throw .system(error)
        }
        defer { Syscall.unmap(address, Int(size)) }
        let bytes = UnsafeRawBufferPointer(start: address, count: Int(size))
        do {
            let value = try decode(bytes)
            keep(bytes)
            return value
        } catch {
            throw .codec(error)
        }
    }
}
