import CMultiprocessing

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// What travels on a sandbox's report pipes: to the parent, from the init (in force, or why not)
/// and the supervisor (why the task ended), on a pipe the task never holds, so nothing it writes
/// can pass for a report; and from the init to the supervisor (started or failed, then the exit
/// record). Frames: kind (1: an encoded message, 2: the init's exit record, 3: started,
/// 4: failed, 5: the report, 6: the exit and 7: a view template in ``SandboxBytes``), length
/// (UInt32, little-endian), payload.
enum SandboxMessage: Codable, Sendable {
    /// Everything is in force (or what is, under best effort): the task is starting.
    case applied(SandboxReport)
    /// A restriction could not be applied: nothing ran.
    case failed(SandboxError)
    /// The task ended: how, and why the sandbox ended it, if it did.
    case exited(SandboxExit)
    /// The init built a view template (``SandboxViewTemplates``): sent with its namespace's
    /// descriptor attached, and what of it is visible inside.
    case viewTemplate([SandboxMounts.Visible])

    /// Writes one message to `fd` (blocking). `false` if it could not. `attaching` (closed here):
    /// a descriptor sent with it, where `fd` is a socket.
    @discardableResult
    static func send(_ message: SandboxMessage, to fd: Int32, attaching descriptor: Int32 = -1) -> Bool {
        guard let frame = frame(message) else {
            if descriptor >= 0 { close(descriptor) }
            return false
        }
        guard descriptor >= 0 else { return writeAll(frame, to: fd) }
        defer { close(descriptor) }
        let fds = [descriptor]
        let sent = fds.withUnsafeBufferPointer {
            mp_sendmsg_fds(fd, frame, frame.count, $0.baseAddress, 1, 0)
        }
        return sent == frame.count || (sent > 0 && writeAll(Array(frame[sent...]), to: fd))
    }

    /// One message's frame; `nil` if it does not encode.
    static func frame(_ message: SandboxMessage) -> [UInt8]? {
        // The frequent ones in the small hand-written format (SandboxBytes), the rare failure
        // with the codec.
        var kind: UInt8 = 1
        let payload: [UInt8]
        switch message {
        case .applied(let report):
            kind = 5
            payload = report.bytes
        case .exited(let exit):
            kind = 6
            payload = exit.bytes
        case .viewTemplate(let visible):
            kind = 7
            var out = SandboxBytes()
            out.put(visible)
            payload = out.bytes
        case .failed:
            guard let encoded = try? TaskCoding.encode(message) else { return nil }
            payload = encoded
        }
        var frame: [UInt8] = [kind]
        withUnsafeBytes(of: UInt32(payload.count).littleEndian) { frame += $0 }
        frame += payload
        return frame
    }

    static func writeAll(_ bytes: [UInt8], to fd: Int32) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return false }
            offset += n
        }
        return true
    }

    /// Tells the supervisor the sandbox started (`true`) or failed (`false`).
    static func mark(started: Bool, to fd: Int32) {
        _ = writeAll([started ? 3 : 4, 0, 0, 0, 0], to: fd)
    }

    /// One item read from a report pipe.
    enum Item {
        case message(SandboxMessage)
        case exitRecord(mp_sb_exit_record)
        case started
        case failed
    }

    /// Splits the bytes read so far into items.
    struct Reader {
        private var buffer: [UInt8] = []
        /// Set when a frame could not be read: what the pipe carries cannot be trusted.
        private(set) var corrupt = false

        mutating func append(_ bytes: ArraySlice<UInt8>) { buffer += bytes }

        /// The next complete item, if one is there.
        mutating func next() -> Item? {
            guard !corrupt, buffer.count >= 5 else { return nil }
            let length = Int(buffer[1]) | Int(buffer[2]) << 8 | Int(buffer[3]) << 16 | Int(buffer[4]) << 24
            guard length <= 1 << 20 else {
                corrupt = true
                return nil
            }
            guard buffer.count >= 5 + length else { return nil }
            let kind = buffer[0]
            let payload = Array(buffer[5..<(5 + length)])
            buffer.removeFirst(5 + length)
            switch kind {
            case 1:
                guard let message = try? TaskCoding.decode(SandboxMessage.self, from: payload) else {
                    corrupt = true
                    return nil
                }
                return .message(message)
            case 3: return .started
            case 4: return .failed
            case 5:
                guard let report = SandboxReport(bytes: payload) else {
                    corrupt = true
                    return nil
                }
                return .message(.applied(report))
            case 6:
                guard let exit = SandboxExit(bytes: payload) else {
                    corrupt = true
                    return nil
                }
                return .message(.exited(exit))
            case 7:
                var input = SandboxBytes(payload)
                guard let visible = input.visible() else {
                    corrupt = true
                    return nil
                }
                return .message(.viewTemplate(visible))
            case 2 where payload.count == MemoryLayout<mp_sb_exit_record>.size:
                var record = mp_sb_exit_record()
                withUnsafeMutableBytes(of: &record) { $0.copyBytes(from: payload) }
                return .exitRecord(record)
            default:
                corrupt = true
                return nil
            }
        }

        /// Reads what `fd` has (blocking once if `blocking`); `false` at end of file or error.
        mutating func fill(from fd: Int32) -> Bool {
            var chunk = [UInt8](repeating: 0, count: 4096)
            while true {
                let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { return false }
                append(chunk[0..<n])
                return true
            }
        }
    }
}

/// How a sandboxed task ended, as its supervisor saw it.
struct SandboxExit: Codable, Sendable {
    /// Why the sandbox ended it, if it did.
    var verdict: SandboxVerdict?
    /// The task's wait status.
    var status: Int32
    /// Its CPU time, user and system.
    var cpuMicroseconds: UInt64
    /// Whether the supervisor removed its cgroups.
    var cgroupsRemoved: Bool
}
