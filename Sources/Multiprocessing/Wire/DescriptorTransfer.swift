import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Carries file descriptors beside an encoded message: handles (channel ends, shared memory)
/// encode an index into this table and the descriptors travel with the frame (SCM_RIGHTS).
enum DescriptorTransfer {
    static let key = CodingUserInfoKey(rawValue: "swift-multiprocessing.descriptors")!

    /// Collects descriptors while a message is encoded.
    final class Outgoing: Sendable {
        private let state = Mutex<(fds: [Int32], afterSend: [@Sendable () -> Void])>(([], []))

        init() {}

        /// Adds `fd` to the message; returns its index. `afterSend` runs once the frame is sent
        /// (a channel end closes its local copy: it has moved to the receiver).
        func attach(_ fd: Int32, afterSend: (@Sendable () -> Void)? = nil) -> Int {
            state.withLock { s in
                s.fds.append(fd)
                if let afterSend { s.afterSend.append(afterSend) }
                return s.fds.count - 1
            }
        }

        var descriptors: [Int32] { state.withLock { $0.fds } }

        func completeSend() {
            let actions = state.withLock { s in
                defer { s.afterSend.removeAll() }
                return s.afterSend
            }
            for action in actions { action() }
        }
    }

    /// Descriptors received with a frame; decoded handles take theirs, the rest are closed.
    final class Incoming: Sendable {
        private let fds: Mutex<[Int32?]>

        init(_ fds: [Int32]) { self.fds = Mutex(fds.map { $0 }) }

        /// Takes ownership of descriptor `index`; `nil` if it is missing or already taken.
        func take(_ index: Int) -> Int32? {
            fds.withLock { fds in
                guard fds.indices.contains(index), let fd = fds[index] else { return nil }
                fds[index] = nil
                return fd
            }
        }

        /// Closes what no handle claimed, so a malformed or hostile message leaks nothing.
        func closeUnclaimed() {
            let rest = fds.withLock { fds in
                defer { fds = fds.map { _ in nil } }
                return fds.compactMap { $0 }
            }
            for fd in rest { Syscall.close(fd) }
        }
    }

    /// The error a handle throws when it is encoded outside a transfer.
    static func notTransferable(_ what: String, _ codingPath: [any CodingKey]) -> EncodingError {
        EncodingError.invalidValue(
            what,
            .init(
                codingPath: codingPath,
                debugDescription:
                    "\(what) holds a file descriptor: it can only travel inside a task given to a child process or in a message sent over a ProcessChannel"
            ))
    }

    static func missing(_ what: String, _ codingPath: [any CodingKey]) -> DecodingError {
        DecodingError.dataCorrupted(
            .init(
                codingPath: codingPath,
                debugDescription: "\(what): its file descriptor did not arrive with the message"))
    }
}

/// Descriptors carried as such inside a message: a payload encoded with its own attachments
/// (a pool initializer's handles) rides inside a worker's task this way. The sender's copies stay
/// open; the receiver owns what arrives, through ``take()``. Received descriptors nobody took
/// are closed when the last copy of the value goes, so a message whose decoding fails after
/// this part leaks nothing.
struct PassedDescriptors: Codable, Sendable {
    /// The descriptors, for encoding. Received ones belong to ``take()``'s caller.
    let fds: [Int32]
    private let received: Received?

    /// Received descriptors until someone takes them.
    private final class Received: Sendable {
        private let fds: Mutex<[Int32]>

        init(_ fds: [Int32]) { self.fds = Mutex(fds) }

        func take() -> [Int32] {
            fds.withLock { fds in
                defer { fds = [] }
                return fds
            }
        }

        deinit {
            for fd in take() { Syscall.close(fd) }
        }
    }

    /// Descriptors to send; the caller keeps them open.
    init(_ fds: [Int32]) {
        self.fds = fds
        received = nil
    }

    /// The received descriptors, which the caller now owns (empty if already taken); the
    /// sender's own, for a value made with ``init(_:)``.
    func take() -> [Int32] {
        received?.take() ?? fds
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.unkeyedContainer()
        guard !fds.isEmpty else { return }
        guard let attachments = encoder.userInfo[DescriptorTransfer.key] as? DescriptorTransfer.Outgoing
        else {
            throw DescriptorTransfer.notTransferable("descriptors", encoder.codingPath)
        }
        for fd in fds { try container.encode(attachments.attach(fd)) }
    }

    init(from decoder: any Decoder) throws {
        var container = try decoder.unkeyedContainer()
        var fds: [Int32] = []
        let incoming = decoder.userInfo[DescriptorTransfer.key] as? DescriptorTransfer.Incoming
        while !container.isAtEnd {
            let index: Int
            do {
                index = try container.decode(Int.self)
            } catch {
                for fd in fds { Syscall.close(fd) }
                throw error
            }
            guard let fd = incoming?.take(index) else {
                for fd in fds { Syscall.close(fd) }
                throw DescriptorTransfer.missing("descriptors", decoder.codingPath)
            }
            fds.append(fd)
        }
        self.fds = fds
        received = Received(fds)
    }
}
