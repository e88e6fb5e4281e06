import CMultiprocessing

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A queue's side channel for items too large for its ring: a `SOCK_SEQPACKET` pair. A producer
/// sends each large item's memory descriptor with the item's number on one end; the consumer
/// that takes the item's record from the ring peeks the other end for the matching message.
///
/// Every process holding the queue holds both ends (copies of the same two descriptors), and
/// only the holder of the queue's lock uses them, always without blocking.
final class QueueSockets: Sendable {
    /// The end producers send on.
    let sender: Int32
    /// The end consumers receive from.
    let receiver: Int32

    /// A large item's message: its number and byte length, and the descriptor of its memory.
    struct Message {
        var sequence: UInt64
        var length: UInt64
        var descriptor: Int32
    }

    /// What a non-blocking send did.
    enum SendOutcome { case sent, full }

    init() throws(QueueError) {
        do {
            (sender, receiver) = try Syscall.seqpacketPair()
        } catch {
            throw .system(error)
        }
        // Producers never read their end and consumers never write theirs. Only a hint to the
        // kernel: nothing depends on it, so its result is not checked.
        try? Syscall.shutdown(sender, Int32(SHUT_RD))
    }

    private init(sender: Int32, receiver: Int32) {
        self.sender = sender
        self.receiver = receiver
    }

    deinit {
        Syscall.close(sender)
        Syscall.close(receiver)
    }

    /// Sends large item `sequence` (`length` bytes in `descriptor`), never blocking.
    func send(sequence: UInt64, length: UInt64, descriptor: Int32) throws(QueueError) -> SendOutcome {
        let words = [sequence, length]
        var descriptor = descriptor
        let result = words.withUnsafeBytes { raw in
            Result { () throws(SystemError) in
                try Syscall.sendWithDescriptors(
                    sender, raw.baseAddress, raw.count, &descriptor, descriptor >= 0 ? 1 : 0,
                    flags: Int32(MSG_DONTWAIT))
            }
        }
        switch result {
        case .success(.processed(QueueLayout.largePayload)): return .sent
        case .success(.processed(let n)):
            // A SOCK_SEQPACKET message goes whole or not at all: a short one is the kernel's bug.
            throw .system(
                SystemError(
                    "sendmsg (sent \(n) of \(QueueLayout.largePayload) bytes)", errno: .messageTooLong))
        case .success(.wouldBlock): return .full
        case .failure(let error) where error.errno == .noBufferSpace || error.errno == .tooManyReferences:
            return .full
        case .failure(let error): throw .system(error)
        }
    }

    /// The next message, left in the socket (its descriptor is a duplicate the caller closes),
    /// or `nil` when none is waiting.
    func peek() throws(QueueError) -> Message? {
        try receive(peek: true)
    }

    /// Removes the next message, whatever it is, and closes its descriptor.
    func discard() {
        // One message exactly: `receive(peek: false)` would go on past a malformed one and
        // remove the good message behind it.
        var words: [UInt64] = [0, 0]
        var fd: Int32 = -1
        // Nothing to do about a failure: a message that cannot be received is not there to drop.
        _ = try? Self.receive(receiver, &words, &fd, peek: false)
        if fd >= 0 { Syscall.close(fd) }
    }

    private func receive(peek: Bool) throws(QueueError) -> Message? {
        var words: [UInt64] = [0, 0]
        var fd: Int32 = -1
        let n: Int
        do {
            guard let received = try Self.receive(receiver, &words, &fd, peek: peek) else { return nil }
            n = received
        } catch {
            throw .system(error)
        }
        // End of file: cannot happen while this handle holds the sending end too, but never loop.
        if n == 0 && fd < 0 { return nil }
        guard n == QueueLayout.largePayload, fd >= 0 else {
            // Not one of ours: drop it so it cannot block the ones behind it.
            if fd >= 0 { Syscall.close(fd) }
            if peek { discard() }
            return try receive(peek: peek)
        }
        return Message(sequence: words[0], length: words[1], descriptor: fd)
    }

    /// Receives (or, with `peek`, copies without consuming) the next message without blocking:
    /// its bytes, or `nil` when none is waiting. `fd` gets its descriptor (close-on-exec; a peek
    /// gets a duplicate) or -1; any further descriptors are closed. `EMFILE` when the kernel
    /// could not install the message's descriptor here (a peeked message then stays queued):
    /// passing it off as a message without one would drop the item for good.
    private static func receive(_ socket: Int32, _ words: inout [UInt64], _ fd: inout Int32, peek: Bool)
        throws(SystemError) -> Int?
    {
        var count: Int32 = 0
        var notes: Int32 = 0
        fd = -1
        let flags = Int32(MSG_DONTWAIT) | (peek ? Int32(MSG_PEEK) : 0)
        let result = words.withUnsafeMutableBytes { raw in
            Result { () throws(SystemError) in
                try Syscall.receiveWithDescriptors(
                    socket, raw.baseAddress, raw.count, &fd, 1, &count, &notes, flags: flags)
            }
        }
        if count == 0 { fd = -1 }
        guard case .processed(let n) = try result.get() else { return nil }
        if notes & Int32(MP_FDS_TRUNCATED) != 0 {
            if fd >= 0 { Syscall.close(fd) }
            fd = -1
            throw SystemError("recvmsg", errno: .tooManyOpenFiles)
        }
        return n
    }

    /// Encodes both descriptors (they travel beside the message; these copies stay open).
    func encode(to container: inout some UnkeyedEncodingContainer, _ encoder: any Encoder) throws {
        guard let attachments = encoder.userInfo[DescriptorTransfer.key] as? DescriptorTransfer.Outgoing
        else {
            throw DescriptorTransfer.notTransferable("a queue", encoder.codingPath)
        }
        let keepAlive: @Sendable () -> Void = { withExtendedLifetime(self) {} }
        try container.encode(attachments.attach(sender, afterSend: keepAlive))
        try container.encode(attachments.attach(receiver, afterSend: keepAlive))
    }

    /// Takes both descriptors that arrived with the message.
    static func decode(from container: inout some UnkeyedDecodingContainer, _ decoder: any Decoder) throws
        -> QueueSockets
    {
        let senderIndex = try container.decode(Int.self)
        let receiverIndex = try container.decode(Int.self)
        guard let incoming = decoder.userInfo[DescriptorTransfer.key] as? DescriptorTransfer.Incoming else {
            throw DescriptorTransfer.missing("a queue", decoder.codingPath)
        }
        let sender = incoming.take(senderIndex)
        let receiver = incoming.take(receiverIndex)
        guard let sender, let receiver else {
            if let sender { Syscall.close(sender) }
            if let receiver { Syscall.close(receiver) }
            throw DescriptorTransfer.missing("a queue", decoder.codingPath)
        }
        return QueueSockets(sender: sender, receiver: receiver)
    }
}
