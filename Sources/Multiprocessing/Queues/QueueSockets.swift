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
        var fds: [Int32] = [-1, -1]
        let rc = mp_seqpacket_pair(&fds)
        guard rc == 0 else { throw .system(SystemError("socketpair", code: rc)) }
        sender = fds[0]
        receiver = fds[1]
        // Producers never read their end and consumers never write theirs.
        _ = shutdown(sender, Int32(SHUT_RD))
    }

    private init(sender: Int32, receiver: Int32) {
        self.sender = sender
        self.receiver = receiver
    }

    deinit {
        systemClose(sender)
        systemClose(receiver)
    }

    /// Sends large item `sequence` (`length` bytes in `descriptor`), never blocking.
    func send(sequence: UInt64, length: UInt64, descriptor: Int32) throws(QueueError) -> SendOutcome {
        let words = [sequence, length]
        let sent = words.withUnsafeBytes { mp_queue_send(sender, $0.baseAddress, $0.count, descriptor) }
        if sent == QueueLayout.largePayload { return .sent }
        let code = errno
        if sent < 0 && (code == EAGAIN || code == EWOULDBLOCK || code == ENOBUFS || code == ETOOMANYREFS) {
            return .full
        }
        throw .system(SystemError("sendmsg", code: sent < 0 ? code : EMSGSIZE))
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
        let n = words.withUnsafeMutableBytes { mp_queue_receive(receiver, $0.baseAddress, $0.count, &fd, 0) }
        if n >= 0 && fd >= 0 { systemClose(fd) }
    }

    private func receive(peek: Bool) throws(QueueError) -> Message? {
        var words: [UInt64] = [0, 0]
        var fd: Int32 = -1
        let n = words.withUnsafeMutableBytes {
            mp_queue_receive(receiver, $0.baseAddress, $0.count, &fd, peek ? 1 : 0)
        }
        if n < 0 {
            let code = errno
            if code == EAGAIN || code == EWOULDBLOCK { return nil }
            throw .system(SystemError("recvmsg", code: code))
        }
        // End of file: cannot happen while this handle holds the sending end too, but never loop.
        if n == 0 && fd < 0 { return nil }
        guard n == QueueLayout.largePayload, fd >= 0 else {
            // Not one of ours: drop it so it cannot block the ones behind it.
            if fd >= 0 { systemClose(fd) }
            if peek { discard() }
            return try receive(peek: peek)
        }
        return Message(sequence: words[0], length: words[1], descriptor: fd)
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
            if let sender { systemClose(sender) }
            if let receiver { systemClose(receiver) }
            throw DescriptorTransfer.missing("a queue", decoder.codingPath)
        }
        return QueueSockets(sender: sender, receiver: receiver)
    }
}
