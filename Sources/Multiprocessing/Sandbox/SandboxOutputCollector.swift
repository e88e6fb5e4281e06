import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Reads one output pipe of a sandboxed program to its end, on the library's reactor (no
/// thread waits), keeping at most `limit` bytes.
final class SandboxOutputCollector: Sendable {
    private let fd: Int32
    private let limit: Int
    private let state = Mutex<(bytes: [UInt8], truncated: Bool, stopped: Bool, closed: Bool)>(
        ([], false, false, false))

    init(fd: Int32, limit: Int) {
        self.fd = fd
        self.limit = max(0, limit)
        try? Syscall.setNonBlocking(fd)  // Fails only for a descriptor that is not open.
    }

    /// Reads until end-of-file (or, after ``finish(after:)``, until the pipe is empty); returns
    /// what was kept and whether anything was dropped. Closes the pipe.
    func collect() async -> ([UInt8], Bool) {
        var chunk = [UInt8](repeating: 0, count: 64 << 10)
        var readsAfterStop = 0
        // What the pipe holds is read even once stopped: only waiting for more stops (a busy
        // program may be collected after the grace period began).
        reading: while true {
            let result = chunk.withUnsafeMutableBytes { raw in
                Result { () throws(SystemError) in try Syscall.readNonBlocking(fd, raw.baseAddress, raw.count)
                }
            }
            switch result {
            case .success(.processed(0)), .failure:
                break reading
            case .success(.processed(let n)):
                // A writer that never stops (left outside a PID namespace) cannot keep it here.
                if state.withLock({ $0.stopped }) {
                    readsAfterStop += 1
                    if readsAfterStop > 16 { break reading }
                }
                state.withLock { s in
                    let room = max(0, limit - s.bytes.count)
                    s.bytes += chunk[0..<min(n, room)]
                    if n > room { s.truncated = true }
                }
            case .success(.wouldBlock):
                if state.withLock({ $0.stopped }) { break reading }
                do throws(IOReactor.WaitError) {
                    let reactor: IOReactor
                    do throws(SystemError) { reactor = try IOReactor.running() } catch {
                        throw .failed(error)
                    }
                    try await reactor.wait(
                        fd, for: .read, unless: { [self] in state.withLock { $0.stopped } })
                } catch {
                    if state.withLock({ $0.stopped }) { break reading }
                    await WaitTimer.sleep(for: .milliseconds(5))
                }
            }
        }
        close()
        return state.withLock { ($0.bytes, $0.truncated) }
    }

    /// Stops reading `delay` from now if end-of-file has not come by then.
    func finish(after delay: Duration) {
        let deadline = WaitDeadline(after: delay)
        WaitTimer.shared.schedule(at: deadline) { [self] in
            // Under the lock, and only while the pipe is open: once closed, its number may be
            // another descriptor's (a child's pidfd), whose watch must not be dropped.
            state.withLock { s in
                s.stopped = true
                if !s.closed { IOReactor.existing?.forget(fd) }
            }
        }
    }

    /// Closes the pipe (once).
    func close() {
        let close = state.withLock { s in
            defer { s.closed = true }
            if !s.closed { IOReactor.existing?.forget(fd) }
            return !s.closed
        }
        if close { Syscall.close(fd) }
    }
}
