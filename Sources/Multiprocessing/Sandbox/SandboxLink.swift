import CMultiprocessing
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The parent's end of a sandboxed child's report socket: the sandbox says on it whether it is
/// in force (a start waits for that), and at the end why it ended the task (the supervisor's
/// verdict, or a direct start's exit record, from which this process works the verdict out:
/// ``SandboxDirectStart``); an init or task that built a view template sends it here
/// (``SandboxViewTemplates``). The task closes its copy before any of its own code runs, so
/// nothing it writes can pass for a report.
final class SandboxLink: Sendable {
    /// The parent's end (non-blocking).
    let readFD: Int32
    /// The child's end, sent with the launch request and closed here once sent.
    let writeFD: Int32

    private struct State {
        var reader = SandboxMessage.Reader()
        var report: SandboxReport?
        var failure: SandboxError?
        var exit: SandboxExit?
        var atEnd = false
        var closed = false
        var childEndClosed = false
        /// Descriptors received and not yet matched with their message.
        var received: [Int32] = []
        /// The start's view template ticket, when the child builds one.
        var ticket: SandboxViewTemplates.Ticket?
        /// A direct start's cgroups and CPU limit: its init sends the task's exit record here,
        /// and this process works out the verdict (``SandboxDirectStart``).
        var direct: (cgroups: SandboxCgroups, cpuLimit: Duration?)?
    }
    private let state = Mutex(State())

    init() throws(ProcessError) {
        // A socket, not a pipe: a view template's descriptor comes back on it.
        let pair: (Int32, Int32)
        do throws(SystemError) { pair = try Syscall.socketPair() } catch { throw .launchFailed(error) }
        readFD = pair.0
        writeFD = pair.1
        try? Syscall.setNonBlocking(readFD)  // Fails only for a descriptor that is not open.
    }

    deinit {
        let s = state.withLock { $0 }
        if !s.closed { Syscall.close(readFD) }
        if !s.childEndClosed { Syscall.close(writeFD) }
        for fd in s.received { Syscall.close(fd) }
    }

    /// The child builds a view template for `ticket`: kept when it arrives.
    func expectTemplate(_ ticket: SandboxViewTemplates.Ticket) {
        state.withLock { $0.ticket = ticket }
    }

    /// A direct start: the init, not a supervisor, reports the task's end, as an exit record.
    func expectExitRecord(cpuLimit: Duration?) {
        state.withLock { $0.direct = (SandboxCgroups(), cpuLimit) }
    }

    /// A direct start's cgroups, made while its task starts: kept for the verdict and removed
    /// after the end, and described to the task, which waits for them (``SandboxCgroups/word``,
    /// after its length). The task may be gone already: the word is then dropped, never a
    /// SIGPIPE.
    func sendCgroups(_ cgroups: SandboxCgroups) {
        let sent = state.withLock { s -> Bool in
            guard !s.closed, s.direct != nil else { return false }
            s.direct?.cgroups = cgroups
            return true
        }
        guard sent else {
            cgroups.remove()
            return
        }
        let word = cgroups.word
        let frame = withUnsafeBytes(of: UInt32(word.count).littleEndian, Array.init) + word
        // A socket buffer takes it whole: a fresh link holds nothing else this way.
        _ = frame.withUnsafeBytes {
            try? Syscall.send(readFD, $0.baseAddress, $0.count, flags: Int32(MSG_NOSIGNAL))
        }
    }

    /// A direct start's task's wait status, from its init's exit record; `nil` without one (the
    /// init was killed, or it is no direct start).
    func reportedExitStatus() -> Int32? {
        _ = drain()
        return state.withLock { $0.direct == nil ? nil : $0.exit?.status }
    }

    /// The child has its copy (or never will).
    func closeChildEnd() {
        let close = state.withLock { s in
            defer { s.childEndClosed = true }
            return !s.childEndClosed
        }
        if close { Syscall.close(writeFD) }
    }

    /// The report, once the sandbox is in force.
    var report: SandboxReport? { state.withLock { $0.report } }

    /// Why the sandbox ended the task, once the child has ended (call ``finish(supervisor:)`` first).
    var exit: SandboxExit? { state.withLock { $0.exit } }

    /// Reads what the pipe holds now; `true` once the start is decided (report, failure or end).
    private func drain() -> Bool {
        state.withLock { s in
            if !s.closed {
                var chunk = [UInt8](repeating: 0, count: 4096)
                var fds: [Int32] = [-1, -1]
                while true {
                    var count: Int32 = 0
                    var notes: Int32 = 0
                    let n = chunk.withUnsafeMutableBytes {
                        mp_recvmsg_fds(readFD, $0.baseAddress, $0.count, &fds, 2, &count, 0, &notes)
                    }
                    s.received += fds.prefix(Int(count))
                    if n > 0 {
                        s.reader.append(chunk[0..<n])
                        continue
                    }
                    if n < 0 && errno == EINTR { continue }
                    if n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK) { s.atEnd = true }
                    break
                }
            }
            while let item = s.reader.next() {
                if case .exitRecord(let record) = item, let direct = s.direct, s.exit == nil {
                    // Read while the cgroups are still there: the parent removes them after the join.
                    s.exit = SandboxExit(
                        verdict: SandboxSupervisor.verdict(
                            record, cgroups: direct.cgroups, cpuLimit: direct.cpuLimit),
                        status: record.status, cpuMicroseconds: record.cpu_microseconds, cgroupsRemoved: false
                    )
                }
                guard case .message(let message) = item else { continue }
                switch message {
                case .applied(let report): s.report = s.report ?? report
                case .failed(let error): s.failure = s.failure ?? error
                case .exited(let exit): s.exit = s.exit ?? exit
                case .viewTemplate(let visible):
                    // Sent with the namespace's descriptor: the first one received.
                    guard let ticket = s.ticket, !s.received.isEmpty else { continue }
                    s.ticket = nil
                    SandboxViewTemplates.keep(s.received.removeFirst(), visible: visible, for: ticket)
                }
            }
            if s.reader.corrupt { s.atEnd = true }
            return s.report != nil || s.failure != nil || s.atEnd
        }
    }

    /// What the start learnt: the report, or the typed error.
    private func decision() throws(ProcessError) -> SandboxReport {
        let (report, failure) = state.withLock { ($0.report, $0.failure) }
        if let failure { throw .sandbox(failure) }
        if let report { return report }
        throw .sandbox(.setupFailed("the child ended before its sandbox was in force"))
    }

    /// Waits (blocking the calling thread) until the sandbox is in force.
    func waitForReport() throws(ProcessError) -> SandboxReport {
        while !drain() {
            _ = try? Syscall.poll(readFD, events: Int16(POLLIN), milliseconds: -1)
        }
        return try decision()
    }

    /// Waits (suspended) until the sandbox is in force.
    func waitForReport() async throws(ProcessError) -> SandboxReport {
        let reactor: IOReactor
        do throws(SystemError) { reactor = try IOReactor.running() } catch { throw .launchFailed(error) }
        while !drain() {
            do throws(IOReactor.WaitError) {
                try await reactor.wait(readFD, for: .read)
            } catch .cancelled {
                throw .cancelled
            } catch {
                // Not watchable (out of epoll watches): look again shortly.
                await WaitTimer.sleep(for: .milliseconds(5))
            }
        }
        return try decision()
    }

    /// Why the sandbox ended the task: the supervisor's verdict; else, under an address-space
    /// limit (where no cgroup counts OOM kills), a crash in the allocator or with its message.
    func verdict(status: ExitStatus?, standardErrorTail: [String], crashReport: CrashReport?)
        -> SandboxVerdict?
    {
        if let verdict = exit?.verdict { return verdict }
        guard let report, report.memoryLimitMechanism == .resourceLimit, case .signaled(let signal)? = status,
            signal != .kill
        else { return nil }
        let said = standardErrorTail.contains { line in
            line.contains("Could not allocate memory") || line.contains("failed to allocate")
                || line.contains("out of memory")
                || line.contains("Cannot allocate memory")
        }
        let allocating = crashReport?.frames.contains { frame in
            let symbol = frame.symbol ?? ""
            return symbol.contains("swift_slowAlloc") || symbol.contains("malloc")
        }
        return said || allocating == true ? .memoryLimit : nil
    }

    /// After the child's end: reads the supervisor's last word, removes the sandbox's cgroups
    /// (which held the supervisor to its end) and closes the descriptors that came on the link
    /// (the sandbox's mount namespace). Idempotent. `supervisor` is the child's pid: the
    /// cgroups are named after it, so those of a sandbox that failed to start, or whose
    /// supervisor was killed before it could report them, are found too.
    func finish(supervisor: Int32?) {
        _ = drain()
        let (reported, removed, close) = state.withLock { s -> ([String], Bool, Bool) in
            defer { s.closed = true }
            return (s.report?.cgroupDirectories ?? [], s.exit?.cgroupsRemoved ?? false, !s.closed)
        }
        guard close else { return }
        IOReactor.existing?.forget(readFD)
        Syscall.close(readFD)
        let unmatched = state.withLock { s in
            defer { s.received = [] }
            return s.received
        }
        // Last: the sandbox's mount namespace, sent with the supervisor's last word (a direct
        // start's task sends it with its report), is taken down here (its mounts, an RCU grace
        // period) rather than in an exit on the way to the join.
        defer { for fd in unmatched { Syscall.close(fd) } }
        guard !removed else { return }
        var leftovers = reported
        for directory in state.withLock({ $0.direct?.cgroups.directories ?? [] })
        where !leftovers.contains(directory) {
            leftovers.append(directory)
        }
        if let supervisor {
            for directory in SandboxCgroups.directories(
                of: supervisor, in: SandboxHostFacts.cgroupHierarchies)
            where !leftovers.contains(directory) {
                leftovers.append(directory)
            }
        }
        // Every process of the sandbox is gone once the supervisor is: one try is enough, but
        // one that must wait for stragglers does it on a thread of its own.
        let busy = leftovers.filter { rmdir($0) != 0 && errno == EBUSY }
        if !busy.isEmpty { try? OSThread.detach(name: "mp-cgroups") { SandboxCgroups.remove(busy) } }
    }
}
