import CMultiprocessing

/// The message layer shared by every channel end: encoding with descriptors, frame kinds,
/// and the `Codable` form of a handle.
enum MessageIO {
    static func encode<M: Encodable>(_ message: M) throws(ChannelError) -> (
        [UInt8], DescriptorTransfer.Outgoing
    ) {
        let attachments = DescriptorTransfer.Outgoing()
        do {
            return (try TaskCoding.encode(message, attachments: attachments), attachments)
        } catch {
            throw .codec(error)
        }
    }

    static func decode<M: Decodable>(_ type: M.Type, _ frame: Frame) throws(ChannelError) -> M {
        guard frame.kind == .message else {
            for fd in frame.descriptors { Syscall.close(fd) }
            throw .unexpectedFrameKind(expected: FrameKind.message.name, received: frame.kind.name)
        }
        let incoming = DescriptorTransfer.Incoming(frame.descriptors)
        defer { incoming.closeUnclaimed() }
        do {
            return try TaskCoding.decode(type, from: frame.payload, descriptors: incoming)
        } catch {
            throw .codec(error)
        }
    }

    static func send<M: Encodable>(_ message: M, on socket: FramedSocket) async throws(ChannelError) {
        let (bytes, attachments) = try encode(message)
        try await socket.send(.message, bytes, descriptors: attachments.descriptors)
        attachments.completeSend()
    }

    static func sendBlocking<M: Encodable>(_ message: M, on socket: FramedSocket) throws(ChannelError) {
        let (bytes, attachments) = try encode(message)
        try socket.sendBlocking(.message, bytes, descriptors: attachments.descriptors)
        attachments.completeSend()
    }

    static func sendBytes(_ bytes: some Collection<UInt8>, on socket: FramedSocket) async throws(ChannelError)
    {
        // An Array passes through without a copy.
        try await socket.send(.bytes, Array(bytes))
    }

    static func sendBytesBlocking(_ bytes: some Collection<UInt8>, on socket: FramedSocket)
        throws(ChannelError)
    {
        try socket.sendBlocking(.bytes, Array(bytes))
    }

    static func receive<M: Decodable>(_ type: M.Type, on socket: FramedSocket, timeout: Duration?)
        async throws(ChannelError) -> M
    {
        try decode(type, try await socket.receive(timeout: timeout))
    }

    static func receiveBlocking<M: Decodable>(_ type: M.Type, on socket: FramedSocket, timeout: Duration?)
        throws(ChannelError) -> M
    {
        try decode(type, try socket.receiveBlocking(timeout: timeout))
    }

    static func bytes(of frame: Frame) -> [UInt8] {
        for fd in frame.descriptors { Syscall.close(fd) }
        return frame.payload
    }

    static func receiveBytes(on socket: FramedSocket, timeout: Duration?) async throws(ChannelError)
        -> [UInt8]
    {
        bytes(of: try await socket.receive(timeout: timeout))
    }

    static func receiveBytesBlocking(on socket: FramedSocket, timeout: Duration?) throws(ChannelError)
        -> [UInt8]
    {
        bytes(of: try socket.receiveBlocking(timeout: timeout))
    }

    /// A handle encodes the index of its descriptor in the message's table; the descriptor
    /// itself travels beside the frame, and this copy closes once the frame is sent.
    static func encodeHandle(_ socket: FramedSocket, _ what: String, to encoder: any Encoder) throws {
        guard let attachments = encoder.userInfo[DescriptorTransfer.key] as? DescriptorTransfer.Outgoing
        else {
            throw DescriptorTransfer.notTransferable(what, encoder.codingPath)
        }
        guard !socket.isClosed else {
            throw EncodingError.invalidValue(
                what,
                .init(
                    codingPath: encoder.codingPath,
                    debugDescription: "\(what) is closed (or has already moved to another process)"))
        }
        var container = encoder.singleValueContainer()
        try container.encode(attachments.attach(socket.fd, afterSend: { socket.close() }))
    }

    static func decodeHandle(_ what: String, from decoder: any Decoder) throws -> FramedSocket {
        let index = try decoder.singleValueContainer().decode(Int.self)
        guard let incoming = decoder.userInfo[DescriptorTransfer.key] as? DescriptorTransfer.Incoming,
            let fd = incoming.take(index)
        else {
            throw DescriptorTransfer.missing(what, decoder.codingPath)
        }
        // Ready for a later `close`, which needs a dead socket (best effort: `close` copes).
        _ = DeadSocket.descriptor()
        return FramedSocket(fd: fd)
    }
}

extension FramedSocket {
    /// A connected pair of stream sockets, close-on-exec.
    static func pair() throws(ChannelError) -> (FramedSocket, FramedSocket) {
        // `close` swaps in a dead socket: make it now, while a failure can still be reported.
        do throws(SystemError) { try DeadSocket.prepare() } catch { throw .system(error) }
        let fds: (Int32, Int32)
        do throws(SystemError) { fds = try Syscall.socketPair() } catch { throw .system(error) }
        return (FramedSocket(fd: fds.0), FramedSocket(fd: fds.1))
    }
}
