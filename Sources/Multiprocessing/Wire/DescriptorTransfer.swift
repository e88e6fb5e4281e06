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
            for fd in rest { close(fd) }
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
