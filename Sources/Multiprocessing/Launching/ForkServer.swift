import CMultiprocessing
import Dispatch
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The parent's side of the fork server: a spawned copy of this binary that never starts a
/// thread and forks children on request (the server loop itself is C, in `mp_forkserver_serve`).
///
/// Requests go over a SOCK_SEQPACKET socket with the child's descriptors attached; the server
/// answers each with the new pid, reaps its children and reports every exit status, which is
/// routed to that child's ``ChildMonitor``. The server dies with this process, and its
/// children with it.
final class ForkServer: Sendable {
    private final class Slot: Sendable {
        let server = Mutex<ForkServer?>(nil)
    }
    private static let initialSlot = Slot()
    /// Written only in a freshly forked child, while it has a single thread.
    nonisolated(unsafe) private static var afterForkSlot: Slot?
    private static var slot: Slot { afterForkSlot ?? initialSlot }

    /// In a child made by `fork`: the parent's server is not ours to use. A fresh slot rather
    /// than a reset one: another thread of the parent may have held the lock at the fork.
    static func forgetAfterFork() { afterForkSlot = Slot() }

    /// In the parent before a `.fork`: makes what ``forgetAfterFork()`` makes (see ``AfterFork``).
    static func prepareForFork() {
        _ = slot
        _ = Slot()
    }

    /// The running server, started on first use.
    static func shared() throws(ProcessError) -> ForkServer {
        let result: Result<ForkServer, ProcessError> = slot.server.withLock { server in
            if let server { return .success(server) }
            do throws(ProcessError) {
                let started = try ForkServer()
                server = started
                return .success(started)
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    /// The server is running already (``shared()`` would not start it).
    static var running: ForkServer? { slot.server.withLock { $0 } }

    /// One request's answer, waited for by a blocked thread or a suspended task.
    final class Pending: Sendable {
        let monitor: @Sendable (Int32) -> ChildMonitor
        private let done = DispatchSemaphore(value: 0)
        private let state = Mutex<
            (result: Result<ChildMonitor, ProcessError>?, waiter: CheckedContinuation<Void, Never>?)
        >(
            (nil, nil))
        init(monitor: @escaping @Sendable (Int32) -> ChildMonitor) { self.monitor = monitor }

        func settle(_ result: Result<ChildMonitor, ProcessError>) {
            let waiter = state.withLock { s in
                s.result = result
                defer { s.waiter = nil }
                return s.waiter
            }
            done.signal()
            waiter?.resume()
        }

        func wait() throws(ProcessError) -> ChildMonitor {
            done.wait()
            return try state.withLock { $0.result }!.get()
        }

        func wait() async throws(ProcessError) -> ChildMonitor {
            await withCheckedContinuation { (waiter: CheckedContinuation<Void, Never>) in
                let ready = state.withLock { s in
                    if s.result != nil { return true }
                    s.waiter = waiter
                    return false
                }
                if ready { waiter.resume() }
            }
            return try state.withLock { $0.result }!.get()
        }
    }

    private struct State {
        var pending: [Pending] = []
        var children: [Int32: ChildMonitor] = [:]
        var dead = false
    }

    let serverPID: Int32
    private let controlFD: Int32
    private let state = Mutex(State())
    /// Serializes requests so that replies match them in order.
    private let requestLock = Mutex(())

    /// Starts a server; ``shared()`` keeps the one this process uses (tests start their own).
    init() throws(ProcessError) {
        let reactor: IOReactor
        do throws(SystemError) { reactor = try IOReactor.running() } catch { throw .launchFailed(error) }
        let fds: [Int32]
        do throws(SystemError) {
            let pair = try Syscall.seqpacketPair()
            fds = [pair.0, pair.1]
        } catch {
            throw .launchFailed(error)
        }
        // Every symbol bound once, at the server's start (LD_BIND_NOW): each forked child would
        // otherwise resolve its own first calls lazily, again and again (0.7 ms of an unconfined
        // start and 1.5–2 ms of a sandboxed one went there). ":bound" tells the server to drop
        // the variable before it forks, so no child, and nothing a child executes, inherits it.
        var overrides = [ChildEntry.variable: "forkserver:\(getpid())"]
        if getenv("LD_BIND_NOW") == nil {
            overrides["LD_BIND_NOW"] = "1"
            overrides[ChildEntry.variable]! += ":bound"
        }
        let environment = Launcher.environment(with: overrides)
        do {
            serverPID = try Launcher.shared.spawnSelf(
                argv0: "mp-forkserver", keep: [fds[1]], stderr: -1, environment: environment,
                workingDirectory: nil)
        } catch {
            Syscall.close(fds[0])
            Syscall.close(fds[1])
            throw .launchFailed(error)
        }
        Syscall.close(fds[1])
        controlFD = fds[0]
        // Fails only for a descriptor that is not open; the reactor then reports the hang-up.
        try? Syscall.setNonBlocking(controlFD)
        // The server is our direct child: reap it when it goes.
        let server = serverPID
        do throws(SystemError) {
            try OSThread.detach(name: "mp-fs-reaper") {
                var status: Int32 = 0
                _ = try? Syscall.waitpid(server, &status, 0)  // ECHILD: reaped elsewhere.
            }
            try reactor.watch(controlFD) { [self] in readReplies() }
        } catch {
            // No thread or watch for it: a server nobody can hear must not run.
            _ = try? Syscall.kill(server, SIGKILL)  // ESRCH: it died already.
            var status: Int32 = 0
            _ = try? Syscall.waitpid(server, &status, 0)  // ECHILD: reaped elsewhere.
            Syscall.close(controlFD)
            throw .launchFailed(error)
        }
    }

    /// Requests sent and not answered yet.
    var pendingRequests: Int { state.withLock { $0.pending.count } }

    /// Forks a child whose control channel is `channelFD` and whose stderr is `stderrFD` (or
    /// ours, if -1), and returns its monitor, created before any exit notice can arrive.
    /// With `sandboxInit`, the child is a sandbox's init made in its namespaces
    /// (``SandboxDirectStart``), which reports on `link`.
    func fork(
        channelFD: Int32, stderrFD: Int32, environment: [String: String], workingDirectory: String?,
        sandboxInit: SandboxInitRequest? = nil,
        monitor: @escaping @Sendable (Int32) -> ChildMonitor
    ) throws(ProcessError) -> ChildMonitor {
        try request(
            channelFD: channelFD, stderrFD: stderrFD, environment: environment,
            workingDirectory: workingDirectory, sandboxInit: sandboxInit,
            monitor: monitor
        ).wait()
    }

    /// ``fork(channelFD:stderrFD:environment:workingDirectory:monitor:)`` for `async` code: the
    /// caller is suspended, not blocked, until the server answers.
    func fork(
        channelFD: Int32, stderrFD: Int32, environment: [String: String], workingDirectory: String?,
        sandboxInit: SandboxInitRequest? = nil,
        monitor: @escaping @Sendable (Int32) -> ChildMonitor
    ) async throws(ProcessError) -> ChildMonitor {
        try await request(
            channelFD: channelFD, stderrFD: stderrFD, environment: environment,
            workingDirectory: workingDirectory, sandboxInit: sandboxInit,
            monitor: monitor
        ).wait()
    }

    /// What makes a fork server's child a sandbox's init: its namespaces (`clone` flags), the
    /// init's flags (``SandboxDirectStart/initFlags``) and the link it reports on.
    struct SandboxInitRequest {
        var namespaces: UInt32
        var flags: UInt32
        var link: Int32
    }

    /// The largest request the server reads (its buffer, in `mp_forkserver_serve`).
    static let requestLimit = 65536

    /// Sends a fork request (the socket never blocks: a full one is an error, `EAGAIN`).
    private func request(
        channelFD: Int32, stderrFD: Int32, environment: [String: String], workingDirectory: String?,
        sandboxInit: SandboxInitRequest?, monitor: @escaping @Sendable (Int32) -> ChildMonitor
    ) throws(ProcessError) -> Pending {
        var request: [UInt8] = []
        // Magic, environment and directory lengths, the init's namespaces and flags.
        var header: (UInt32, UInt32, UInt32, UInt32, UInt32) = (
            0x6d70_6673, 0, 0, sandboxInit?.namespaces ?? 0, sandboxInit?.flags ?? 0
        )
        var env: [UInt8] = []
        for (key, value) in environment.sorted(by: { $0.key < $1.key }) {
            env += Array("\(key)=\(value)".utf8) + [0]
        }
        let cwd = Array((workingDirectory ?? "").utf8)
        header.1 = UInt32(env.count)
        header.2 = UInt32(cwd.count)
        withUnsafeBytes(of: &header) { request += $0 }
        request += env + cwd
        guard request.count <= Self.requestLimit else {
            throw .forkServerRequestTooLarge(bytes: request.count, limit: Self.requestLimit)
        }
        let fds = [channelFD] + (sandboxInit.map { [$0.link] } ?? []) + (stderrFD >= 0 ? [stderrFD] : [])
        let pending = Pending(monitor: monitor)
        let sendError: ProcessError? = requestLock.withLock { _ in
            let dead = state.withLock { s in
                if !s.dead { s.pending.append(pending) }
                return s.dead
            }
            if dead { return .forkServerExited }
            let sent = request.withUnsafeBytes { raw in
                fds.withUnsafeBufferPointer { fds in
                    Result { () throws(SystemError) in
                        try Syscall.retrying("sendmsg") {
                            mp_sendmsg_fds(
                                controlFD, raw.baseAddress, raw.count, fds.baseAddress, Int32(fds.count), 0)
                        }
                    }
                }
            }
            switch sent {
            case .success: return nil
            case .failure(let error):
                state.withLock { s in s.pending.removeAll { $0 === pending } }
                // A closed socket: the server is gone (the reactor hears it too).
                let gone = error.errno == .brokenPipe || error.errno == .connectionReset
                return gone ? .forkServerExited : .launchFailed(error)
            }
        }
        if let sendError { throw sendError }
        return pending
    }

    /// Runs on the reactor thread: started replies and exit notices.
    private func readReplies() -> Bool {
        while true {
            var reply: (Int32, Int32, Int32, Int32) = (0, 0, 0, 0)
            let received = withUnsafeMutableBytes(of: &reply) {
                try? Syscall.recv(controlFD, $0.baseAddress, $0.count)
            }
            if case .wouldBlock = received { return true }
            // End of file, a failed recv or a short answer: the server is gone or broken.
            guard case .processed(MemoryLayout.size(ofValue: reply)) = received else {
                serverDied()
                return false
            }
            let (kind, pid, status, err) = reply
            if kind == 1 {
                guard let pending = state.withLock({ $0.pending.isEmpty ? nil : $0.pending.removeFirst() })
                else { continue }
                if pid > 0 {
                    let monitor = pending.monitor(pid)
                    state.withLock { $0.children[pid] = monitor }
                    pending.settle(.success(monitor))
                } else {
                    pending.settle(.failure(.launchFailed(SystemError("fork", code: err))))
                }
            } else if kind == 2 {
                state.withLock { $0.children.removeValue(forKey: pid) }?.recordExit(waitStatus: status)
            }
        }
    }

    private func serverDied() {
        let (pending, children) = state.withLock { s in
            s.dead = true
            defer {
                s.pending.removeAll()
                s.children.removeAll()
            }
            return (s.pending, s.children)
        }
        for p in pending {
            p.settle(.failure(.forkServerExited))
        }
        // Its children were killed with it (parent-death signal).
        for (_, monitor) in children { monitor.recordExit(waitStatus: SIGKILL) }
        Self.slot.server.withLock { if $0 === self { $0 = nil } }
        IOReactor.existing?.forget(controlFD)
        Syscall.close(controlFD)
    }
}
