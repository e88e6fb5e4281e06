#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// One end of a two-way channel between processes: CPython's `Pipe()` / `Connection`.
///
/// ```swift
/// let (parent, child) = try ProcessChannel<Message>.pair()
/// let worker = try ChildProcess(Echo(channel: child))   // `child` moves to the worker
/// try await worker.start()
/// try await parent.send(.ping)
/// let reply = try await parent.receive(timeout: .seconds(1))
/// ```
///
/// Typed `Codable` messages and raw bytes travel on the same channel. An end is `Codable`: store
/// it in a ``ProcessTask`` or send it in a message, and it moves to the receiving process (the
/// local copy is closed once sent, so the peer sees end-of-file when that process dies).
/// A closed or dead peer gives ``ChannelError/peerClosed``, never a hang.
public final class ProcessChannel<Message: Codable & Sendable>: Sendable, Codable {
    let socket: FramedSocket

    init(socket: FramedSocket) { self.socket = socket }

    /// A connected pair of ends.
    public static func pair() throws(ChannelError) -> (ProcessChannel, ProcessChannel) {
        let (a, b) = try FramedSocket.pair()
        return (ProcessChannel(socket: a), ProcessChannel(socket: b))
    }

    /// A one-way channel: CPython's `Pipe(duplex=False)`.
    public static func oneWay() throws(ChannelError) -> (
        receiver: ChannelReceiver<Message>, sender: ChannelSender<Message>
    ) {
        let (a, b) = try FramedSocket.pair()
        do throws(SystemError) {
            try Syscall.shutdown(a.fd, Int32(SHUT_WR))
            try Syscall.shutdown(b.fd, Int32(SHUT_RD))
        } catch {
            throw .system(error)  // Both ends close with their sockets.
        }
        return (ChannelReceiver(socket: a), ChannelSender(socket: b))
    }

    /// Sends one message, waiting while the peer's buffer is full.
    public func send(_ message: Message) async throws(ChannelError) {
        try await MessageIO.send(message, on: socket)
    }

    /// Sends raw bytes as one frame (CPython's `send_bytes`).
    public func sendBytes(_ bytes: some Collection<UInt8>) async throws(ChannelError) {
        try await MessageIO.sendBytes(bytes, on: socket)
    }

    /// Waits for the next message; with a `timeout`, throws ``ChannelError/timedOut`` when none came.
    public func receive(timeout: Duration? = nil) async throws(ChannelError) -> Message {
        try await MessageIO.receive(Message.self, on: socket, timeout: timeout)
    }

    /// Waits for the next frame and returns its bytes (CPython's `recv_bytes`).
    public func receiveBytes(timeout: Duration? = nil) async throws(ChannelError) -> [UInt8] {
        try await MessageIO.receiveBytes(on: socket, timeout: timeout)
    }

    /// Blocking ``send(_:)``, for code that is not async.
    public func sendBlocking(_ message: Message) throws(ChannelError) {
        try MessageIO.sendBlocking(message, on: socket)
    }

    /// Blocking ``receive(timeout:)``, for code that is not async.
    public func receiveBlocking(timeout: Duration? = nil) throws(ChannelError) -> Message {
        try MessageIO.receiveBlocking(Message.self, on: socket, timeout: timeout)
    }

    /// `true` when a message (or the peer's end-of-file) is ready to receive, waiting up to
    /// `timeout` for one. CPython's `poll()`.
    ///
    /// A zero timeout never waits: while another task is receiving on this end (a `messages`
    /// loop waiting for the next one), nothing is ready for this caller and `poll` says `false`.
    public func poll(timeout: Duration = .zero) throws(ChannelError) -> Bool {
        try socket.poll(timeout: timeout)
    }

    /// The messages, until the peer closes the channel.
    public var messages: ChannelMessages<Message> { ChannelMessages(socket: socket) }

    /// Closes this end. Idempotent; operations waiting on it fail with ``ChannelError/closed``.
    public func close() { socket.close() }

    /// Whether this end has been closed (or has moved to another process).
    public var isClosed: Bool { socket.isClosed }

    /// Encodes a reference to this end's descriptor, which travels with the message.
    public func encode(to encoder: any Encoder) throws {
        try MessageIO.encodeHandle(socket, "ProcessChannel", to: encoder)
    }

    /// Takes the descriptor that arrived with the message.
    public required init(from decoder: any Decoder) throws {
        socket = try MessageIO.decodeHandle("ProcessChannel", from: decoder)
    }
}

/// The receiving end of a one-way channel (``ProcessChannel/oneWay()``).
public final class ChannelReceiver<Message: Codable & Sendable>: Sendable, Codable {
    let socket: FramedSocket

    init(socket: FramedSocket) { self.socket = socket }

    /// Waits for the next message; with a `timeout`, throws ``ChannelError/timedOut`` when none came.
    public func receive(timeout: Duration? = nil) async throws(ChannelError) -> Message {
        try await MessageIO.receive(Message.self, on: socket, timeout: timeout)
    }

    /// Waits for the next frame and returns its bytes.
    public func receiveBytes(timeout: Duration? = nil) async throws(ChannelError) -> [UInt8] {
        try await MessageIO.receiveBytes(on: socket, timeout: timeout)
    }

    /// Blocking ``receive(timeout:)``.
    public func receiveBlocking(timeout: Duration? = nil) throws(ChannelError) -> Message {
        try MessageIO.receiveBlocking(Message.self, on: socket, timeout: timeout)
    }

    /// `true` when a message (or end-of-file) is ready, waiting up to `timeout`; a zero timeout
    /// never waits (see ``ProcessChannel/poll(timeout:)``).
    public func poll(timeout: Duration = .zero) throws(ChannelError) -> Bool {
        try socket.poll(timeout: timeout)
    }

    /// The messages, until the sender closes.
    public var messages: ChannelMessages<Message> { ChannelMessages(socket: socket) }

    /// Closes this end.
    public func close() { socket.close() }

    /// Encodes a reference to this end's descriptor, which travels with the message.
    public func encode(to encoder: any Encoder) throws {
        try MessageIO.encodeHandle(socket, "ChannelReceiver", to: encoder)
    }

    /// Takes the descriptor that arrived with the message.
    public required init(from decoder: any Decoder) throws {
        socket = try MessageIO.decodeHandle("ChannelReceiver", from: decoder)
    }
}

/// The sending end of a one-way channel (``ProcessChannel/oneWay()``).
public final class ChannelSender<Message: Codable & Sendable>: Sendable, Codable {
    let socket: FramedSocket

    init(socket: FramedSocket) { self.socket = socket }

    /// Sends one message.
    public func send(_ message: Message) async throws(ChannelError) {
        try await MessageIO.send(message, on: socket)
    }

    /// Sends raw bytes as one frame.
    public func sendBytes(_ bytes: some Collection<UInt8>) async throws(ChannelError) {
        try await MessageIO.sendBytes(bytes, on: socket)
    }

    /// Blocking ``send(_:)``.
    public func sendBlocking(_ message: Message) throws(ChannelError) {
        try MessageIO.sendBlocking(message, on: socket)
    }

    /// Blocking ``sendBytes(_:)``.
    public func sendBytesBlocking(_ bytes: some Collection<UInt8>) throws(ChannelError) {
        try MessageIO.sendBytesBlocking(bytes, on: socket)
    }

    /// Closes this end: the receiver sees the end of the messages.
    public func close() { socket.close() }

    /// Encodes a reference to this end's descriptor, which travels with the message.
    public func encode(to encoder: any Encoder) throws {
        try MessageIO.encodeHandle(socket, "ChannelSender", to: encoder)
    }

    /// Takes the descriptor that arrived with the message.
    public required init(from decoder: any Decoder) throws {
        socket = try MessageIO.decodeHandle("ChannelSender", from: decoder)
    }
}

extension ProcessChannel {
    /// Blocking ``sendBytes(_:)``.
    public func sendBytesBlocking(_ bytes: some Collection<UInt8>) throws(ChannelError) {
        try MessageIO.sendBytesBlocking(bytes, on: socket)
    }

    /// Blocking ``receiveBytes(timeout:)``.
    public func receiveBytesBlocking(timeout: Duration? = nil) throws(ChannelError) -> [UInt8] {
        try MessageIO.receiveBytesBlocking(on: socket, timeout: timeout)
    }
}

extension ChannelReceiver {
    /// Blocking ``receiveBytes(timeout:)``.
    public func receiveBytesBlocking(timeout: Duration? = nil) throws(ChannelError) -> [UInt8] {
        try MessageIO.receiveBytesBlocking(on: socket, timeout: timeout)
    }
}

/// The messages of a channel end as an `AsyncSequence`, ending when the peer closes.
public struct ChannelMessages<Message: Codable & Sendable>: AsyncSequence, Sendable {
    let socket: FramedSocket

    /// Iterates the messages.
    public struct AsyncIterator: AsyncIteratorProtocol {
        let socket: FramedSocket

        /// The next message, or `nil` once the peer has closed.
        public mutating func next() async throws(ChannelError) -> Message? {
            do {
                return try await MessageIO.receive(Message.self, on: socket, timeout: nil)
            } catch .peerClosed {
                return nil
            }
        }
    }

    /// Makes an iterator.
    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(socket: socket) }
}
