import CMultiprocessing
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Watches one running child from the parent: reaps it the moment it exits (so there are no
/// zombies, whether or not anyone joins), collects what it sent on its control socket, tees its
/// stderr to ours while keeping the last lines, and wakes whoever waits for its end.
final class ChildMonitor: Sendable {
    let pid: Int32
    let name: String
    let socket: FramedSocket

    private struct State {
        var status: ExitStatus?
        /// Set the moment the pid is reaped: from then on it may belong to another process.
        var reaped = false
        var frames: [Frame] = []
    }

    private let state = Mutex(State())
    private let exited = OneShotEvent()
    private let stderrTail: StderrTee?

    /// Starts watching. `reaper` says who reports the exit: this process (`waitpid`) or the fork
    /// server (it calls ``recordExit(waitStatus:)``).
    init(pid: Int32, name: String, socket: FramedSocket, stderrReadEnd: Int32?, reapHere: Bool) {
        self.pid = pid
        self.name = name
        self.socket = socket
        stderrTail = stderrReadEnd.map { StderrTee(fd: $0) }
        IOReactor.shared.watch(socket.fd) { [self] in
            let (frames, atEOF) = socket.drainAvailable()
            if !frames.isEmpty { state.withLock { $0.frames += frames } }
            return !atEOF
        }
        if reapHere { watchExit() }
    }

    private func watchExit() {
        let pidfd = mp_pidfd_open(pid)
        if pidfd >= 0 {
            IOReactor.shared.watch(pidfd) { [self] in
                var status: Int32 = 0
                let r = waitpid(pid, &status, WNOHANG)
                if r == 0 || (r < 0 && errno == EINTR) { return true }  // Not yet: keep watching.
                state.withLock { $0.reaped = true }
                IOReactor.shared.forget(pidfd)
                systemClose(pidfd)
                // r < 0: something else in the program reaped it (SIGCHLD ignored, waitpid(-1)).
                recordExit(waitStatus: r == pid ? status : nil)
                return false
            }
        } else {
            // No pidfd (old kernel, other systems): one thread per child, blocked in waitpid.
            OSThread.detach(name: "mp-reaper") { [self] in
                var status: Int32 = 0
                var r: Int32
                repeat { r = waitpid(pid, &status, 0) } while r < 0 && errno == EINTR
                state.withLock { $0.reaped = true }
                recordExit(waitStatus: r == pid ? status : nil)
            }
        }
    }

    /// Records the end of the child. Reads what it wrote before dying first, so that a result
    /// or the last stderr lines are never lost to a race with the exit notice.
    ///
    /// A `nil` status means it could not be read (another part of the program reaped the
    /// child): it is reported as exit code 0 if the child sent its outcome, 255 otherwise.
    func recordExit(waitStatus: Int32?) {
        let (frames, _) = socket.drainAvailable()
        stderrTail?.drain()
        state.withLock { s in
            s.frames += frames
            s.reaped = true
            if let waitStatus {
                s.status = ExitStatus(waitStatus: waitStatus)
            } else {
                s.status = .exited(s.frames.contains { $0.kind == .outcome } ? 0 : 255)
            }
        }
        exited.fire()
    }

    var status: ExitStatus? { state.withLock { $0.status } }

    /// The frames received so far (the task's outcome, for a one-off child).
    var frames: [Frame] { state.withLock { $0.frames } }

    var standardErrorTail: [String] { stderrTail?.lastLines ?? [] }

    /// Waits for the exit. Returns early (with `nil` status) if the task is cancelled.
    func waitForExit() async { await exited.wait() }

    /// Waits for the exit at most `timeout`; returns the status, or `nil` if it is still running.
    func waitForExit(timeout: Duration) async -> ExitStatus? {
        await exited.wait(timeout: timeout)
        return status
    }

    /// Signals the child's whole process group (it and the processes it started), unless it has
    /// already been reaped: a reaped pid may belong to someone else by now.
    func signal(_ signal: Signal) {
        state.withLock { s in
            guard !s.reaped else { return }
            if systemKill(-pid, signal.rawValue) != 0 { _ = systemKill(pid, signal.rawValue) }
        }
    }
}

/// Copies a child's stderr to ours as it arrives and keeps the last few kilobytes.
final class StderrTee: Sendable {
    static let tailBytes = 8 * 1024
    static let tailLines = 20
    private let fd: Int32
    private let tail = Mutex<[UInt8]>([])
    private let finished = Atomic<Bool>(false)

    init(fd: Int32) {
        self.fd = fd
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        IOReactor.shared.watch(fd) { [self] in readAvailable() }
    }

    /// Reads everything available now; `false` at EOF (then the pipe is closed).
    @discardableResult
    func readAvailable() -> Bool {
        tail.withLock { tail -> Bool in
            if finished.load(ordering: .acquiring) { return false }
            var chunk = [UInt8](repeating: 0, count: 16 * 1024)
            while true {
                let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if n > 0 {
                    chunk.withUnsafeBytes { raw in
                        var offset = 0
                        // Never block the reactor on our own stderr: if nobody reads it, the
                        // child's output is dropped here (its tail is still kept).
                        while offset < n, systemPoll(2, events: Int16(POLLOUT), milliseconds: 0) > 0 {
                            let w = write(2, raw.baseAddress! + offset, n - offset)
                            if w <= 0 { break }
                            offset += w
                        }
                    }
                    tail.append(contentsOf: chunk[0..<n])
                    if tail.count > Self.tailBytes { tail.removeFirst(tail.count - Self.tailBytes) }
                    continue
                }
                if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { return true }
                if n < 0 && errno == EINTR { continue }
                // EOF (or an error): every writer is gone.
                finished.store(true, ordering: .releasing)
                IOReactor.shared.forget(fd)
                systemClose(fd)
                return false
            }
        }
    }

    func drain() { readAvailable() }

    var lastLines: [String] {
        let bytes = tail.withLock { $0 }
        let text = String(decoding: bytes, as: UTF8.self)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: true).map(String.init)
        return Array(lines.suffix(Self.tailLines))
    }
}
