import Logging
import Synchronization

/// One log record of a child on its way to the parent (see ``ParentLogHandler``).
struct ForwardedLogRecord: Codable, Sendable {
    var label: String
    var level: Logger.Level
    var message: String
    var metadata: [String: String]
    var source: String
    var file: String
    var function: String
    var line: UInt
    var pid: Int32
    var processName: String

    /// The largest datagram sent: comfortably under a Unix socket's default send buffer.
    static let maxBytes = 60 << 10

    /// Sends the record as one datagram, waiting while the parent's socket is full; `false`
    /// when the parent is gone (or the record cannot be encoded).
    func send(on fd: Int32) -> Bool {
        var record = self
        if record.message.utf8.count > Self.maxBytes / 2 {
            record.message =
                String(decoding: record.message.utf8.prefix(Self.maxBytes / 2), as: UTF8.self) + "…"
        }
        guard var bytes = try? TaskCoding.encode(record) else { return false }
        if bytes.count > Self.maxBytes {
            record.metadata = ["metadata": "dropped: \(bytes.count) bytes"]
            guard let smaller = try? TaskCoding.encode(record) else { return false }
            bytes = smaller
        }
        // A blocking socket: the call waits for room, and never sends part of a datagram.
        let sent = bytes.withUnsafeBytes { raw in try? Syscall.send(fd, raw.baseAddress, raw.count) }
        guard case .processed = sent else { return false }
        return true
    }

    /// The record as a line for stderr, when no parent takes it.
    var plainText: String {
        let extra =
            metadata.isEmpty
            ? "" : " " + metadata.sorted { $0.key < $1.key }.map { "\($0)=\($1)" }.joined(separator: " ")
        return "\(level) \(label):\(extra) [\(processName) \(pid)] \(message)"
    }

    /// Logs the record on the parent's `logger`, naming the child.
    func emit(on logger: Logger) {
        var merged: Logger.Metadata = metadata.mapValues { .string($0) }
        merged["process.name"] = .string(processName)
        merged["process.pid"] = .stringConvertible(pid)
        merged["logger.label"] = .string(label)
        logger.log(
            level: level, "\(message)", metadata: merged, source: source, file: file, function: function,
            line: line)
    }
}

/// The parent's end of a child's record socket: reads records on the I/O reactor as they come
/// and logs them on the child's logger.
final class ForwardedLogReader: Sendable {
    private let fd: Int32
    private let logger: Logger
    private let reactor: IOReactor
    /// Held while reading, so that the socket is never closed under a reader; `true` once closed.
    private let finished = Mutex(false)

    /// Starts reading `fd` (which the reader then owns; closed here if watching fails).
    init(fd: Int32, logger: Logger, reactor: IOReactor) throws(SystemError) {
        self.fd = fd
        self.logger = logger
        self.reactor = reactor
        do {
            try Syscall.setNonBlocking(fd)
            try reactor.watch(fd) { [self] in read(limit: 256) }
        } catch {
            Syscall.close(fd)
            throw error
        }
    }

    /// Logs what has arrived, at most `limit` records (so a flooding child cannot hold the
    /// reactor); `false` once every sender is gone (the socket is closed then).
    @discardableResult
    private func read(limit: Int) -> Bool {
        finished.withLock { finished -> Bool in
            guard !finished else { return false }
            var buffer = [UInt8](repeating: 0, count: ForwardedLogRecord.maxBytes + 1024)
            for _ in 0..<limit {
                let received = buffer.withUnsafeMutableBytes { raw in
                    Result { () throws(SystemError) in try Syscall.recv(fd, raw.baseAddress, raw.count) }
                }
                guard case .success(let outcome) = received, case .processed(let n) = outcome, n > 0 else {
                    if case .success(.wouldBlock) = received { return true }
                    close(&finished)
                    return false
                }
                if let record = try? TaskCoding.decode(ForwardedLogRecord.self, from: Array(buffer[..<n])) {
                    record.emit(on: logger)
                }
            }
            return true
        }
    }

    /// Logs everything sent so far (the child has exited: what it sent is all in).
    func drain() { read(limit: 1 << 16) }

    /// Stops reading and closes the socket (also for a child never started).
    func cancel() {
        finished.withLock { finished in
            if !finished { close(&finished) }
        }
    }

    private func close(_ finished: inout Bool) {
        finished = true
        reactor.forget(fd)
        Syscall.close(fd)
    }
}
