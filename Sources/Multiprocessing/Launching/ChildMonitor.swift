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
///
/// Made in two steps so that everything that can fail for want of resources (watching the
/// socket and the stderr pipe) fails before the child exists: ``init`` before the spawn,
/// ``attach(pid:reapHere:)`` after it.
final class ChildMonitor: Sendable {
    let name: String
    let socket: FramedSocket

    private struct State {
        var pid: Int32 = 0
        var status: ExitStatus?
        /// Set the moment the pid is reaped: from then on it may belong to another process.
        var reaped = false
        var frames: [Frame] = []
        /// What the child wrote that is not the control protocol, if it did.
        var violation: String?
        var crashReport: CrashReport??
    }

    private let state = Mutex(State())
    /// Where the exit status comes from when the reaped process only stands for the child (a
    /// direct sandbox start's init: ``SandboxDirectStart``); `nil` from it: the wait status.
    private let exitStatusSource = Mutex<(@Sendable () -> Int32?)?>(nil)
    private let exited = OneShotEvent()
    private let stderrTail: StderrTee?
    private let stdoutCapture: StderrTee?
    private let reactor: IOReactor
    /// Logs and traces the child, when someone listens (Observability/).
    let observer: ChildObserver?

    /// Starts watching the control socket and (if given) the read ends of the child's stderr
    /// and stdout, which the monitor then owns: they are closed here if watching fails.
    init(
        name: String, socket: FramedSocket, stderrReadEnd: Int32?, stdoutReadEnd: Int32? = nil,
        reactor: IOReactor, observer: ChildObserver? = nil
    ) throws(SystemError) {
        self.name = name
        self.socket = socket
        self.reactor = reactor
        self.observer = observer
        do {
            stderrTail = try stderrReadEnd.map { fd throws(SystemError) in
                try StderrTee(fd: fd, reactor: reactor)
            }
        } catch {
            if let stderrReadEnd { Syscall.close(stderrReadEnd) }
            if let stdoutReadEnd { Syscall.close(stdoutReadEnd) }
            throw error
        }
        do {
            stdoutCapture = try stdoutReadEnd.map { fd throws(SystemError) in
                try StderrTee(fd: fd, reactor: reactor, keepsEverything: true)
            }
        } catch {
            if let stdoutReadEnd { Syscall.close(stdoutReadEnd) }
            stderrTail?.cancel()
            throw error
        }
        do {
            try reactor.watch(socket.fd) { [self] in
                let (frames, atEOF, failure) = socket.drainAvailable()
                record(frames, failure: failure)
                return !atEOF
            }
        } catch {
            stderrTail?.cancel()
            stdoutCapture?.cancel()
            throw error
        }
    }

    /// Gives up on a child that was never started: stops watching its descriptors.
    func cancel() {
        reactor.forget(socket.fd)
        stderrTail?.cancel()
        stdoutCapture?.cancel()
        observer?.cancelled(ProcessError.invalidState("the child '\(name)' could not be started"))
    }

    /// Learns the child's pid. `reapHere` says who reports the exit: this process (`waitpid`) or
    /// the fork server (it calls ``recordExit(waitStatus:)``).
    ///
    /// - Throws: when the exit cannot be watched (no descriptor for a pidfd and no thread);
    ///   the child is killed and reaped first.
    func attach(pid: Int32, reapHere: Bool) throws(SystemError) {
        let broke = state.withLock { s in
            s.pid = pid
            return s.violation != nil
        }
        if broke { signal(.kill) }
        observer?.started(name: name, pid: pid)
        guard reapHere else { return }
        let pidfd = mp_pidfd_open(pid)
        if pidfd >= 0 {
            do {
                try reactor.watch(pidfd) { [self] in
                    var status: Int32 = 0
                    // Fails (ECHILD) only when something else in the program reaped it.
                    let r = (try? Syscall.waitpid(pid, &status, WNOHANG)) ?? -1
                    if r == 0 { return true }  // Not yet: keep watching.
                    state.withLock { $0.reaped = true }
                    reactor.forget(pidfd)
                    Syscall.close(pidfd)
                    // r < 0: something else in the program reaped it (SIGCHLD ignored, waitpid(-1)).
                    recordExit(waitStatus: r == pid ? status : nil)
                    return false
                }
                return
            } catch {
                Syscall.close(pidfd)  // Then a thread, as without pidfds.
            }
        }
        do {
            // No pidfd (old kernel, other systems, no descriptor left): a thread blocked in waitpid.
            try OSThread.detach(name: "mp-reaper") { [self] in
                var status: Int32 = 0
                let r = (try? Syscall.waitpid(pid, &status, 0)) ?? -1  // ECHILD: reaped elsewhere.
                state.withLock { $0.reaped = true }
                recordExit(waitStatus: r == pid ? status : nil)
            }
        } catch {
            // Nothing could watch it: it must not run unwatched.
            Self.kill(pid, SIGKILL)
            var status: Int32 = 0
            let r = (try? Syscall.waitpid(pid, &status, 0)) ?? -1  // ECHILD: reaped elsewhere.
            state.withLock { $0.reaped = true }
            recordExit(waitStatus: r == pid ? status : nil)
            throw error
        }
    }

    /// Keeps what the child sent. Only outcomes and crash reports belong on a control channel:
    /// anything else (bytes that are not frames, other kinds of frames, a second outcome) is a
    /// protocol violation, and a child that breaks the protocol is killed, not trusted further.
    private func record(_ frames: [Frame], failure: ChannelError?) {
        var violation = failure.map { "\($0)" }
        var kept: [Frame] = []
        var outcomes = 0
        for frame in frames {
            switch frame.kind {
            case .outcome, .crash:
                if frame.kind == .outcome { outcomes += 1 }
                kept.append(frame)
            default:
                for fd in frame.descriptors { Syscall.close(fd) }
                violation = violation ?? "it sent \(frame.kind.name) where only its outcome may come"
            }
        }
        let kill = state.withLock { s -> Bool in
            if outcomes > 0 && (outcomes > 1 || s.frames.contains { $0.kind == .outcome }) {
                violation = violation ?? "it sent more than one outcome"
            }
            s.frames += kept
            guard let violation, s.violation == nil else { return false }
            s.violation = violation
            return !s.reaped && s.pid != 0
        }
        if kill { signal(.kill) }
    }

    /// Records the end of the child. Reads what it wrote before dying first, so that a result
    /// or the last stderr lines are never lost to a race with the exit notice.
    ///
    /// A `nil` status means it could not be read (another part of the program reaped the
    /// child): it is reported as exit code 0 if the child sent its outcome, 255 otherwise.
    func recordExit(waitStatus reaped: Int32?) {
        state.withLock { $0.reaped = true }  // Before anything could signal the old pid.
        let waitStatus = exitStatusSource.withLock { $0 }?() ?? reaped
        let (frames, _, failure) = socket.drainAvailable()
        record(frames, failure: failure)
        stderrTail?.drain()
        stdoutCapture?.drain()
        state.withLock { s in
            if let waitStatus {
                s.status = ExitStatus(waitStatus: waitStatus)
            } else {
                s.status = .exited(s.frames.contains { $0.kind == .outcome } ? 0 : 255)
            }
        }
        if let observer, let status {
            observer.exited(name: name, pid: pid, status: status) { crashReport }
        }
        exited.fire()
    }

    /// Takes the exit status from `source` when it has one (see ``exitStatusSource``).
    func takeExitStatus(from source: @escaping @Sendable () -> Int32?) {
        exitStatusSource.withLock { $0 = source }
    }

    var pid: Int32 { state.withLock { $0.pid } }

    var status: ExitStatus? { state.withLock { $0.status } }

    /// The frames received so far (the task's outcome, for a one-off child).
    var frames: [Frame] { state.withLock { $0.frames } }

    /// How the child broke the control protocol, if it did (it was killed for it).
    var violation: String? { state.withLock { $0.violation } }

    var standardErrorTail: [String] { stderrTail?.lastLines ?? [] }

    /// Everything the child wrote to its stdout so far, when it is captured.
    var standardOutput: [UInt8] { stdoutCapture?.bytes ?? [] }

    /// Where the child crashed, from the report its crash handler sent, symbolicated on first
    /// use; `nil` if it sent none (a `SIGKILL`, an exit, a crash the handler could not report).
    var crashReport: CrashReport? {
        if let known = state.withLock({ $0.crashReport }) { return known }
        let report = state.withLock { $0.frames }.last { $0.kind == .crash }.flatMap {
            CrashReport(payload: $0.payload)
        }
        state.withLock { $0.crashReport = report }
        return report
    }

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
            guard !s.reaped, s.pid > 0 else { return }
            Self.kill(s.pid, signal.rawValue)
        }
    }

    /// Signals `pid`'s process group, or `pid` alone when it leads none (it has not called
    /// `setpgid` yet). A failure of both means it is gone already: nothing left to signal.
    private static func kill(_ pid: Int32, _ signal: Int32) {
        if (try? Syscall.kill(-pid, signal)) == nil { _ = try? Syscall.kill(pid, signal) }
    }
}

/// Copies a child's stderr to ours as it arrives and keeps the last few kilobytes; or, for a
/// captured stdout (`keepsEverything`), keeps everything and copies nothing.
final class StderrTee: Sendable {
    static let tailBytes = 8 * 1024
    static let tailLines = 20
    private let fd: Int32
    private let tail = Mutex<[UInt8]>([])
    private let finished = Atomic<Bool>(false)
    private let keepsEverything: Bool

    private let reactor: IOReactor

    /// Starts copying. Does not take `fd` over if watching it fails.
    init(fd: Int32, reactor: IOReactor, keepsEverything: Bool = false) throws(SystemError) {
        self.fd = fd
        self.reactor = reactor
        self.keepsEverything = keepsEverything
        try Syscall.setNonBlocking(fd)
        try reactor.watch(fd) { [self] in readAvailable() }
    }

    /// Stops copying and closes the pipe (for a child that was never started).
    func cancel() {
        tail.withLock { _ in
            guard !finished.exchange(true, ordering: .acquiringAndReleasing) else { return }
            reactor.forget(fd)
            Syscall.close(fd)
        }
    }

    /// Reads everything available now; `false` at EOF (then the pipe is closed).
    @discardableResult
    func readAvailable() -> Bool {
        tail.withLock { tail -> Bool in
            if finished.load(ordering: .acquiring) { return false }
            var chunk = [UInt8](repeating: 0, count: 16 * 1024)
            while true {
                let result = chunk.withUnsafeMutableBytes { raw in
                    Result { () throws(SystemError) in
                        try Syscall.readNonBlocking(fd, raw.baseAddress, raw.count)
                    }
                }
                // An error other than EAGAIN ends the copy like EOF: the pipe is of no more use.
                guard case .success(let outcome) = result else { return finish() }
                guard case .processed(let n) = outcome else { return true }
                if n > 0, keepsEverything {
                    tail.append(contentsOf: chunk[0..<n])
                    continue
                }
                if n > 0 {
                    chunk.withUnsafeBytes { raw in
                        var offset = 0
                        // Never block the reactor on our own stderr: if nobody reads it, the
                        // child's output is dropped here (its tail is still kept).
                        while offset < n,
                            (try? Syscall.poll(2, events: Int16(POLLOUT), milliseconds: 0)) ?? 0 > 0
                        {
                            let w = (try? Syscall.write(2, raw.baseAddress! + offset, n - offset)) ?? 0
                            if w <= 0 { break }
                            offset += w
                        }
                    }
                    tail.append(contentsOf: chunk[0..<n])
                    if tail.count > Self.tailBytes { tail.removeFirst(tail.count - Self.tailBytes) }
                    continue
                }
                return finish()  // EOF: every writer is gone.
            }
        }
    }

    /// Stops copying at EOF (called with `tail` held): closes the pipe; `false`.
    private func finish() -> Bool {
        finished.store(true, ordering: .releasing)
        reactor.forget(fd)
        Syscall.close(fd)
        return false
    }

    func drain() { readAvailable() }

    /// What was kept: everything, for a captured stdout.
    var bytes: [UInt8] { tail.withLock { $0 } }

    var lastLines: [String] {
        let bytes = tail.withLock { $0 }
        let text = String(decoding: bytes, as: UTF8.self)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: true).map(String.init)
        return Array(lines.suffix(Self.tailLines))
    }
}
