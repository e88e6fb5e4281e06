import CMultiprocessing
import Logging
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A task running in a child process: CPython's `multiprocessing.Process`.
///
/// ```swift
/// let child = try ChildProcess(Greeter(delay: .seconds(1.5), message: "hello"), name: "greeter")
/// try await child.start()
/// let status = try await child.join()     // .exited(0)
/// ```
///
/// A task that returns a value hands it back through ``value-9ekns``; an error it throws is re-thrown
/// there; a crash (a Swift trap, a segfault in C code, `SIGKILL`) becomes
/// ``ProcessError/crashed(_:)`` with the signal, where the child crashed (``ChildCrash/report``:
/// the crashing function and the crashing thread's backtrace, sent by the child's crash handler)
/// and the last lines the child wrote to stderr.
///
/// The child dies with its parent, even when the parent is `SIGKILL`ed, and kills every process
/// it started first; it is reaped the moment it exits whether or not anyone joins it.
/// ``terminate()`` and ``kill()`` reach the processes the child started too: each child leads
/// its own process group.
///
/// Channel ends stored in the task *move* to the child: this process's copy is closed once the
/// child has received it, so that the peer sees end-of-file when the child dies.
public final class ChildProcess<Work: ProcessTask>: Sendable {
    /// The task the child runs.
    public let task: Work
    /// The child's name (``CurrentProcess/name`` inside it).
    public let name: String
    /// How it is started.
    public let startMethod: StartMethod
    /// Variables set (or replaced) in the child's environment, on top of this process's.
    public let environment: [String: String]
    /// The child's working directory, or `nil` for this process's.
    public let workingDirectory: String?
    /// Whether the child's stderr passes through this process (which keeps its last lines for
    /// crash reports) rather than going straight to this process's stderr.
    public let capturesStandardError: Bool
    /// Whether the child's standard output is captured here (``standardOutput``) instead of
    /// going to this process's.
    public let capturesStandardOutput: Bool
    /// Where the library logs the child's start and end (a crash at `error`, with its report),
    /// and where its forwarded records go; `nil`: nowhere.
    public let logger: Logger?
    /// Whether the child's own swift-log records come to ``logger`` (with `process.name` and
    /// `process.pid` metadata) instead of its stderr: the child's `LoggingSystem` is
    /// bootstrapped with a ``ParentLogHandler`` before its task runs. Not with
    /// ``StartMethod/fork``, whose child keeps this process's logging.
    public let forwardsLogs: Bool
    /// How the child is confined, if it is (``Sandbox``). ``pid`` is then the process that
    /// stands for the task: its supervisor, outside the sandbox, or (started by root through
    /// the fork server) the sandbox's init; either way ``join()`` returns the task's exit status.
    public let sandbox: Sandbox?
    /// The program a sandboxed child runs instead of its task.
    let program: SandboxProgramPlan?
    /// What a sandboxed child is sent: the sandbox and what this process worked out for it.
    private let sandboxPlan: SandboxPlan?

    private let typeName: String
    private let monitor = Mutex<ChildMonitor?>(nil)
    private let sandboxLink = Mutex<SandboxLink?>(nil)
    private let started = Atomic<Bool>(false)
    /// Logs and traces this child, when someone listens (set by the start).
    private let observer = Mutex<ChildObserver?>(nil)

    /// Prepares a child for `task`. Nothing runs until ``start()-76zqq``.
    ///
    /// - Throws: ``ProcessError/unsupportedTaskType(typeName:reason:)`` when a child could not
    ///   find `Work` by name (private, fileprivate or local types), and
    ///   ``ProcessError/unsupportedOutputType(typeName:)`` when `Work.Output` is neither `Void`
    ///   nor `Codable`. Both are detected here, before anything is spawned;
    ///   ``ProcessError/sandbox(_:)`` for a `sandbox` that cannot be asked for (a relative path,
    ///   the `fork` start method).
    public convenience init(
        _ task: Work,
        name: String? = nil,
        startMethod: StartMethod = .spawn,
        environment: [String: String] = [:],
        workingDirectory: String? = nil,
        capturesStandardError: Bool = true,
        capturesStandardOutput: Bool = false,
        logger: Logger? = nil,
        forwardsLogs: Bool = false,
        sandbox: Sandbox? = nil
    ) throws(ProcessError) {
        try self.init(
            task, name: name, startMethod: startMethod, environment: environment,
            workingDirectory: workingDirectory, capturesStandardError: capturesStandardError,
            capturesStandardOutput: capturesStandardOutput, logger: logger, forwardsLogs: forwardsLogs,
            sandbox: sandbox, program: nil)
    }

    /// A child; a sandboxed one may run `program` instead of its task.
    init(
        _ task: Work, name: String?, startMethod: StartMethod, environment: [String: String],
        workingDirectory: String?, capturesStandardError: Bool, capturesStandardOutput: Bool,
        logger: Logger?, forwardsLogs: Bool, sandbox: Sandbox?,
        program: SandboxProgramPlan?
    ) throws(ProcessError) {
        if let sandbox { try sandbox.validate(for: startMethod) }
        typeName = try TypeIdentity.name(of: Work.self).get()
        guard TaskCoding.outputIsTransferable(Work.Output.self) else {
            throw .unsupportedOutputType(typeName: String(reflecting: Work.Output.self))
        }
        self.task = task
        self.name = name ?? "ChildProcess-\(ChildNumbering.next())"
        self.startMethod = startMethod
        self.environment = environment
        self.workingDirectory = workingDirectory
        self.capturesStandardError = capturesStandardError
        self.capturesStandardOutput = capturesStandardOutput
        self.logger = logger
        self.forwardsLogs = forwardsLogs && logger != nil
        self.sandbox = sandbox
        self.program = program
        do throws(SandboxError) {
            sandboxPlan = try sandbox.map { sandbox throws(SandboxError) in
                try SandboxPlan.make(sandbox, program: program)
            }
        } catch {
            throw .sandbox(error)
        }
    }

    /// The child's process id, once started.
    public var pid: Int32? { monitor.withLock { $0?.pid } }

    /// `true` between ``start()-76zqq`` and the child's exit.
    public var isAlive: Bool { monitor.withLock { $0.map { $0.status == nil } ?? false } }

    /// How the child ended, or `nil` while it runs (or before it starts).
    public var exitStatus: ExitStatus? { monitor.withLock { $0?.status } }

    /// What the sandbox applied, once ``start()-76zqq`` has returned (`nil` without a sandbox): every
    /// restriction asked for, or under ``SandboxEnforcement/bestEffort`` exactly those that could be.
    public var sandboxReport: SandboxReport? { sandboxLink.withLock { $0 }?.report }

    /// Why the sandbox ended the child, once it has ended: ``SandboxVerdict/cpuLimit``,
    /// ``SandboxVerdict/systemCallDenied(name:)``, ...; `nil` while it runs, without a sandbox, or
    /// when it ended on its own.
    public var sandboxVerdict: SandboxVerdict? {
        guard let link = sandboxLink.withLock({ $0 }), let child = monitor.withLock({ $0 }),
            child.status != nil
        else { return nil }
        link.finish(supervisor: pid)
        return link.verdict(
            status: child.status, standardErrorTail: child.standardErrorTail, crashReport: child.crashReport)
    }

    /// The last lines the child wrote to stderr (empty when it is not captured).
    var standardErrorTail: [String] { monitor.withLock { $0?.standardErrorTail ?? [] } }

    /// Where the child crashed, if it crashed and its handler could report it.
    var crashReport: CrashReport? { monitor.withLock { $0 }?.crashReport }

    /// What the child wrote to its standard output so far, when ``capturesStandardOutput`` is
    /// set (empty otherwise): all of it once ``join()`` has returned. Invalid UTF-8 is
    /// repaired. It is kept in memory, all of it: for endless output use a channel instead.
    public var standardOutput: String {
        String(decoding: monitor.withLock { $0 }?.standardOutput ?? [], as: UTF8.self)
    }

    /// Starts the child: spawns or forks it and sends it the task. Returns once the child
    /// exists and its task is written (the child may not have read it yet).
    ///
    /// This waits for the library's launcher thread and writes the whole task to the child:
    /// from `async` code call the `async` overload, which does both on the library's own
    /// threads and never blocks one of Swift's cooperative threads.
    public func start() throws(ProcessError) {
        let launch = try prepareStart()
        try launchPrepared(launch)
        if let link = sandboxLink.withLock({ $0 }) {
            do {
                _ = try link.waitForReport()
            } catch {
                try settleSandbox(link, failure: error)
            }
            watchSandbox(link)
        }
    }

    /// Starts the child without blocking the calling task's thread: whatever waits (the spawn
    /// or fork, the fork server's answer, writing a large task) happens on the library's own
    /// threads or while the caller is suspended. CPython's `start()`.
    ///
    /// - Throws: what the blocking ``start()`` throws.
    public func start() async throws(ProcessError) {
        let launch = try prepareStart()
        if startMethod.kind == .forkserver, launch.launchBytes.count <= Self.launcherSendLimit,
            let server = ForkServer.running
        {
            try await launchThroughForkServer(launch, server)
            try await confirmSandbox()
            return
        }
        if launch.launchBytes.count <= Self.launcherSendLimit {
            // Small enough to be written without waiting for the child (a fresh socket's buffer
            // takes it): the launcher thread does the whole start, as it does the spawn of a
            // blocking one, and no thread waits for it.
            let outcome = await withCheckedContinuation { (done: CheckedContinuation<ProcessError?, Never>) in
                do throws(SystemError) {
                    try Launcher.shared.runDetached { [self] in
                        do throws(ProcessError) {
                            try launchPrepared(launch)
                            done.resume(returning: nil)
                        } catch {
                            done.resume(returning: error)
                        }
                    }
                } catch {
                    done.resume(returning: .launchFailed(error))
                }
            }
            if let outcome { throw outcome }
            try await confirmSandbox()
            return
        }
        // A large task is written while the child reads it: on a thread of its own, so that
        // other starts do not wait behind it.
        let outcome: Result<Void, ProcessError>
        do throws(SystemError) {
            outcome = try await BlockingThreads.shared.result { [self] () throws(ProcessError) in
                try launchPrepared(launch)
            }
        } catch {
            throw .launchFailed(error)  // No thread could be started to launch it.
        }
        try outcome.get()
        try await confirmSandbox()
    }

    /// For a sandboxed child: waits until its sandbox is in force, or throws why it is not
    /// (the child is then gone: it ran nothing).
    private func confirmSandbox() async throws(ProcessError) {
        guard let link = sandboxLink.withLock({ $0 }) else { return }
        do {
            _ = try await link.waitForReport()
        } catch {
            try settleSandbox(link, failure: error)
        }
        watchSandbox(link)
    }

    /// A sandbox that did not come into force: the child is stopped (it ran nothing) and the
    /// error thrown.
    private func settleSandbox(_ link: SandboxLink, failure: ProcessError) throws(ProcessError) {
        if case .sandbox = failure {} else { monitor.withLock { $0 }?.signal(.kill) }
        watchSandbox(link)
        throw failure
    }

    /// Reads the supervisor's last word when the child ends, and removes what a killed one left.
    private func watchSandbox(_ link: SandboxLink) {
        guard let child = monitor.withLock({ $0 }) else { return }
        Task.detached {
            await child.waitForExit()
            link.finish(supervisor: child.pid)
        }
    }

    /// The largest launch frame an `async` start writes from the launcher thread.
    private static var launcherSendLimit: Int { 64 << 10 }

    /// What a start sends the child, encoded before anything is spawned.
    private struct PreparedStart: @unchecked Sendable {
        let attachments: DescriptorTransfer.Outgoing
        let launchBytes: [UInt8]
        /// A sandboxed start's view template: the one sent along, or the one the child builds.
        var viewTicket: SandboxViewTemplates.Ticket? = nil
        /// A network namespace made ahead for it, sent along.
        var network: SandboxNetworkSupply.Taken? = nil
        /// A sandboxed start without a supervisor, where it can be one.
        var direct: SandboxDirectStart? = nil
    }

    /// Marks the child started and encodes its task; everything that cannot block.
    private func prepareStart() throws(ProcessError) -> PreparedStart {
        guard !started.exchange(true, ordering: .acquiringAndReleasing) else {
            throw .invalidState(
                "ChildProcess '\(name)' was already started; a process can be started only once")
        }
        let attachments = DescriptorTransfer.Outgoing()
        let launchBytes: [UInt8]
        let observation = observe()
        var plan = sandboxPlan
        let viewTicket = plan.flatMap {
            SandboxViewTemplates.ticket(for: $0.sandbox, runningFiles: $0.runningFiles)
        }
        if let viewTicket { plan?.view = viewTicket.view }
        let network = plan.flatMap { SandboxNetworkSupply.take(for: $0.sandbox) }
        if network != nil { plan?.premadeNetwork = true }
        let direct = plan.flatMap { SandboxDirectStart.make(for: $0, startMethod: startMethod) }
        if let direct {
            plan?.direct = true
            plan?.cgroupsFollow = direct.hasCgroups
        }
        do {
            let payload = try TaskCoding.encode(task, attachments: attachments)
            launchBytes = try TaskCoding.encode(
                LaunchRequest(
                    typeName: typeName, processName: name, payload: payload,
                    capturesStandardOutput: capturesStandardOutput, observation: observation,
                    sandbox: plan?.bytes))
        } catch {
            observer.withLock { $0 }?.cancelled(error)
            throw .codec(error)
        }

        // Refuse what the frame could not carry before anything is spawned (the captured
        // stdout's pipe travels with the task).
        if attachments.descriptors.count
            > 64 - (capturesStandardOutput ? 1 : 0) - (forwardsLogs ? 1 : 0) - (sandbox != nil ? 3 : 0)
        {
            throw .invalidState(
                "the task for '\(name)' holds \(attachments.descriptors.count) descriptors (channel ends, shared memory); at most 64 can travel with it"
            )
        }
        if launchBytes.count > Int(UInt32.max) >> 2 {
            throw .codec(.lengthTooLarge(launchBytes.count))
        }
        return PreparedStart(
            attachments: attachments, launchBytes: launchBytes, viewTicket: viewTicket, network: network,
            direct: direct)
    }

    /// Opens the task's span and prepares the observer; what the child is told about them.
    private func observe() -> LaunchObservation? {
        // A pool worker's life is not a task: the pool traces its jobs and logs the worker's
        // start and end itself (with its task and attempt).
        let worker = Work.self == PoolWorker.self
        let trace =
            worker
            ? nil
            : TaskTrace.begin("multiprocessing.process") { attributes in
                attributes["process.name"] = name
                attributes["process.task"] = typeName
            }
        if logger != nil || trace != nil {
            observer.withLock { $0 = ChildObserver(logger: logger, trace: trace, logsLifecycle: !worker) }
        }
        return ChildObservation.launch(forwardedLevel: forwardsLogs ? logger?.logLevel : nil, trace: trace)
    }

    /// Spawns or forks the child and sends it its task: the part of a start that blocks.
    private func launchPrepared(_ prepared: PreparedStart) throws(ProcessError) {
        StartHook.run(name)
        let setup = try setUpLaunch(direct: prepared.direct)
        defer { setup.closeChildEnds() }
        do throws(ProcessError) {
            try launch(
                setup.child, childEnd: setup.channel[1], stderrWrite: setup.errPipe[1],
                sandboxInit: setup.sandboxInit(prepared.direct))
        } catch {
            setup.child.cancel()
            throw prepared.direct?.failure(error) ?? error
        }
        try sendTask(prepared, setup)
        prepared.direct?.afterLaunch(setup.sandboxLink)
    }

    /// An `async` start through a running fork server: the request is sent from here and the
    /// caller is suspended until the server answers; the task (small: see the caller) is
    /// written to a fresh socket whose buffer takes it whole.
    private func launchThroughForkServer(_ prepared: PreparedStart, _ server: ForkServer)
        async throws(ProcessError)
    {
        let setup = try setUpLaunch(direct: prepared.direct)
        defer { setup.closeChildEnds() }
        let child = setup.child
        do throws(ProcessError) {
            _ = try await server.fork(
                channelFD: setup.channel[1], stderrFD: capturesStandardError ? setup.errPipe[1] : -1,
                environment: environment, workingDirectory: workingDirectory,
                sandboxInit: setup.sandboxInit(prepared.direct)
            ) { pid in
                try? child.attach(pid: pid, reapHere: false)  // The server reaps: cannot fail.
                return child
            }
        } catch {
            child.cancel()
            throw prepared.direct?.failure(error) ?? error
        }
        try sendTask(prepared, setup)
        prepared.direct?.afterLaunch(setup.sandboxLink)
    }

    /// What a start holds between taking its descriptors and sending the task.
    private struct LaunchSetup {
        let socket: FramedSocket
        let child: ChildMonitor
        let channel: [Int32]
        let errPipe: [Int32]
        let outPipe: [Int32]
        /// The record socket of a child whose logs are forwarded.
        var records: [Int32] = [-1, -1]
        let sandboxLink: SandboxLink?

        /// What makes the fork server's child the init of a direct start.
        func sandboxInit(_ direct: SandboxDirectStart?) -> ForkServer.SandboxInitRequest? {
            guard let direct, let sandboxLink else { return nil }
            return ForkServer.SandboxInitRequest(
                namespaces: direct.namespaces, flags: direct.initFlags, link: sandboxLink.writeFD)
        }

        /// The child's ends: it has its own copies (or never will).
        func closeChildEnds() {
            sandboxLink?.closeChildEnd()
            Syscall.close(channel[1])
            if records[1] >= 0 { Syscall.close(records[1]) }
            if errPipe[1] >= 0 { Syscall.close(errPipe[1]) }
            if outPipe[1] >= 0 { Syscall.close(outPipe[1]) }
        }
    }

    /// Takes what a start needs: the channel, the pipes, the monitor.
    private func setUpLaunch(direct: SandboxDirectStart? = nil) throws(ProcessError) -> LaunchSetup {
        // Everything a start needs is taken before anything is spawned, so that running out of
        // descriptors or threads is an error here and never a child left unwatched.
        let reactor: IOReactor
        do throws(SystemError) {
            reactor = try IOReactor.running()
            try DeadSocket.prepare()
        } catch {
            throw .launchFailed(error)
        }
        let channel: [Int32]
        do throws(SystemError) {
            let pair = try Syscall.socketPair()
            channel = [pair.0, pair.1]
        } catch {
            throw .launchFailed(error)
        }
        var errPipe: [Int32] = [-1, -1]
        if capturesStandardError {
            do throws(SystemError) {
                let pipe = try Syscall.pipe()
                errPipe = [pipe.0, pipe.1]
            } catch {
                Syscall.close(channel[0])
                Syscall.close(channel[1])
                throw .launchFailed(error)
            }
        }
        var outPipe: [Int32] = [-1, -1]
        if capturesStandardOutput {
            do throws(SystemError) {
                let pipe = try Syscall.pipe()
                outPipe = [pipe.0, pipe.1]
            } catch {
                for fd in channel + (capturesStandardError ? errPipe : []) { Syscall.close(fd) }
                throw .launchFailed(error)
            }
        }
        var link: SandboxLink?
        if sandbox != nil {
            do {
                link = try SandboxLink()
            } catch {
                for fd in channel + (capturesStandardError ? errPipe : [])
                    + (capturesStandardOutput ? outPipe : [])
                {
                    Syscall.close(fd)
                }
                throw error
            }
        }
        let socket = FramedSocket(fd: channel[0])
        let child: ChildMonitor
        let observer = self.observer.withLock { $0 }
        var records: [Int32] = [-1, -1]
        do throws(SystemError) {
            if forwardsLogs, let observer {
                let pair = try Syscall.seqpacketPair()
                records = [pair.0, pair.1]
                try observer.readRecords(fd: pair.0, reactor: reactor)
            }
            child = try ChildMonitor(
                name: name, socket: socket, stderrReadEnd: capturesStandardError ? errPipe[0] : nil,
                stdoutReadEnd: capturesStandardOutput ? outPipe[0] : nil, reactor: reactor, observer: observer
            )
        } catch {
            Syscall.close(channel[1])
            if capturesStandardError { Syscall.close(errPipe[1]) }
            if capturesStandardOutput { Syscall.close(outPipe[1]) }
            if records[1] >= 0 { Syscall.close(records[1]) }
            link?.closeChildEnd()
            observer?.cancelled(error)
            throw .launchFailed(error)
        }
        if let direct, let link {
            // No supervisor ends like the task: its init reports how the task ended on the link.
            link.expectExitRecord(cpuLimit: direct.cpuLimit)
            child.takeExitStatus(from: { link.reportedExitStatus() })
        }
        sandboxLink.withLock { $0 = link }
        var setup = LaunchSetup(
            socket: socket, child: child, channel: channel, errPipe: errPipe, outPipe: outPipe,
            sandboxLink: link)
        setup.records = records
        return setup
    }

    /// Publishes the started child and sends it its task.
    private func sendTask(_ prepared: PreparedStart, _ setup: LaunchSetup) throws(ProcessError) {
        let (attachments, launchBytes) = (prepared.attachments, prepared.launchBytes)
        let (socket, child, outPipe) = (setup.socket, setup.child, setup.outPipe)
        monitor.withLock { $0 = child }
        do {
            // The child pops from the end: a sandbox's report socket last, then the view
            // template it enters, the network namespace made for it, the stdout pipe, the
            // record socket.
            let template =
                (prepared.network.map { [$0.fd] } ?? [])
                + (prepared.viewTicket.map { $0.fd >= 0 ? [$0.fd] : [] } ?? [])
            if let ticket = prepared.viewTicket, ticket.fd < 0 { setup.sandboxLink?.expectTemplate(ticket) }
            let descriptors =
                attachments.descriptors + (setup.records[1] >= 0 ? [setup.records[1]] : [])
                + (capturesStandardOutput ? [outPipe[1]] : []) + template
                + (setup.sandboxLink.map { [$0.writeFD] } ?? [])
            try socket.sendBlocking(.launch, launchBytes, descriptors: descriptors)
            attachments.completeSend()
        } catch .peerClosed {
            // The child died before reading its task: `join`/`value` report how.
        } catch .system(let error) {
            child.signal(.kill)
            throw .launchFailed(error)
        } catch {
            child.signal(.kill)
            throw .taskNotSent(error)
        }
    }

    /// Starts the child process and tells `child` its pid.
    private func launch(
        _ child: ChildMonitor, childEnd: Int32, stderrWrite: Int32,
        sandboxInit: ForkServer.SandboxInitRequest? = nil
    ) throws(ProcessError) {
        let stderrFD = capturesStandardError ? stderrWrite : -1
        switch startMethod.kind {
        case .spawn:
            var overrides = environment
            overrides[ChildEntry.variable] = "spawn:\(getpid())"
            // argv[0] is the child's name, which `ps` shows for it (the binary is
            // `/proc/self/exe`, found without it).
            let pid = try launchStep(
                try Launcher.shared.spawnSelf(
                    argv0: name, keep: [childEnd], stderr: stderrFD,
                    environment: Launcher.environment(with: overrides), workingDirectory: workingDirectory))
            try launchStep(try child.attach(pid: pid, reapHere: true))
        case .forkserver:
            _ = try ForkServer.shared().fork(
                channelFD: childEnd, stderrFD: stderrFD, environment: environment,
                workingDirectory: workingDirectory, sandboxInit: sandboxInit
            ) { pid in
                // The server reaps; attaching without reaping cannot fail.
                try? child.attach(pid: pid, reapHere: false)
                return child
            }
        case .fork:
            let environment = self.environment
            let workingDirectory = self.workingDirectory
            let parent = getpid()
            let typeName = self.typeName
            let forked: Result<Int32, SystemError> = try launchStep(
                try Launcher.shared.run {
                    ForkWarmUp.prepare(typeName: typeName)
                    // Everything the child sets up is made here: in the child, making a value
                    // can need a runtime lock another thread held at the fork.
                    let setup = ForkedChildSetup(environment: environment, workingDirectory: workingDirectory)
                    defer { setup.release() }  // The parent's copy: the child never returns.
                    let pid = mp_fork()
                    if pid < 0 { return .failure(SystemError("fork")) }  // On this thread: its errno.
                    guard pid == 0 else { return .success(pid) }
                    // Before the death handler, which kills the group it leads. Cannot fail: the
                    // child is ours, fresh, and leads no session.
                    _ = setpgid(0, 0)
                    mp_unblock_all_signals()  // The launcher thread's mask is not the task's business.
                    if mp_die_with_parent(parent) != 0 { _exit(1) }
                    // The child: only this thread exists now. See `StartMethod.fork` for the risks.
                    // Keep only stdio and the channel (as fd 3): a copy of another child's socket
                    // here would keep that child from ever seeing end-of-file. A child that cannot
                    // has no channel to report on: it exits with 71 (EX_OSERR).
                    let failed = mp_forked_child_setup(
                        stderrFD, childEnd, setup.variables, setup.count, setup.workingDirectory,
                        setup.resetsBacktracer ? 1 : 0)
                    if failed != 0 { _exit(failed) }
                    AfterFork.reset()
                    ChildRuntime.serve(controlFD: 3, mainThread: false)
                })
            let pid = try launchStep(try forked.get())
            try launchStep(try child.attach(pid: pid, reapHere: true))
        }
    }

    /// A step of a launch: a failed system call is ``ProcessError/launchFailed(_:)``.
    private func launchStep<T>(_ step: @autoclosure () throws(SystemError) -> T) throws(ProcessError) -> T {
        do throws(SystemError) { return try step() } catch { throw .launchFailed(error) }
    }

    private func running(_ operation: String) throws(ProcessError) -> ChildMonitor {
        guard let child = monitor.withLock({ $0 }) else {
            throw .invalidState("cannot \(operation) ChildProcess '\(name)': it was never started")
        }
        return child
    }

    /// Waits until the child exits and returns how it ended. If the awaiting task is cancelled,
    /// stops waiting (the child keeps running) and throws ``ProcessError/cancelled``.
    @discardableResult
    public func join() async throws(ProcessError) -> ExitStatus {
        let child = try running("join")
        await child.waitForExit()
        guard let status = child.status else { throw .cancelled }
        return status
    }

    /// Waits at most `timeout` for the child to exit: its status, or `nil` if it still runs.
    @discardableResult
    public func join(timeout: Duration) async throws(ProcessError) -> ExitStatus? {
        let child = try running("join")
        return await child.waitForExit(timeout: timeout)
    }

    /// Sends `SIGTERM` to the child and the processes it started. CPython's `terminate()`.
    public func terminate() { send(.terminate) }

    /// Sends `SIGKILL` to the child and the processes it started. CPython's `kill()`.
    public func kill() { send(.kill) }

    /// Sends `signal` to the child's process group. Does nothing once the child has been
    /// reaped (its pid may already belong to another process).
    public func send(_ signal: Signal) {
        monitor.withLock { $0 }?.signal(signal)
    }

    /// Waits for the child's end and returns its outcome, or the reason there is none.
    /// Cancelling the awaiting task kills the child.
    func outcome() async throws -> [UInt8] {
        let child = try running("await the result of")
        defer { for frame in child.frames { for fd in frame.descriptors { Syscall.close(fd) } } }
        await withTaskCancellationHandler {
            await child.waitForExit()
        } onCancel: {
            child.signal(.kill)
        }
        guard let status = child.status else { throw ProcessError.cancelled }
        if let reason = child.violation {
            throw ProcessError.protocolViolation(
                ProtocolViolation(
                    processName: name, pid: child.pid, reason: reason, status: status,
                    standardErrorTail: child.standardErrorTail))
        }
        guard let frame = child.frames.first(where: { $0.kind == .outcome }) else {
            if Task.isCancelled { throw ProcessError.cancelled }
            throw ProcessError.crashed(
                ChildCrash(
                    processName: name, pid: child.pid, status: status,
                    standardErrorTail: child.standardErrorTail, report: child.crashReport,
                    verdict: sandboxVerdict))
        }
        let outcome: TaskOutcome
        do {
            outcome = try TaskCoding.decode(TaskOutcome.self, from: frame.payload)
        } catch {
            // The child's runtime encodes its outcome itself: one that does not decode was
            // written by something else.
            throw ProcessError.protocolViolation(
                ProtocolViolation(
                    processName: name, pid: child.pid, reason: "its outcome does not decode: \(error)",
                    status: status, standardErrorTail: child.standardErrorTail))
        }
        switch outcome {
        case .success(let bytes): return bytes
        case .failure(let report): throw report.rethrowable
        }
    }
}

extension ChildProcess where Work.Output: Decodable {
    /// The task's result, once the child has finished.
    ///
    /// - Throws: the error the task threw (the same value when its type is `Codable` and visible
    ///   by name, otherwise a ``RemoteError``); ``ProcessError/crashed(_:)`` when the child died
    ///   without a result; ``ProcessError/protocolViolation(_:)`` when it wrote something else
    ///   than its outcome on its control channel (it is killed for it); ``ProcessError/cancelled`` when the awaiting task was cancelled (the
    ///   child is killed).
    public var value: Work.Output {
        get async throws {
            let bytes = try await outcome()
            do {
                return try TaskCoding.decode(Work.Output.self, from: bytes)
            } catch {
                throw ProcessError.codec(error)
            }
        }
    }
}

extension ChildProcess where Work.Output == Void {
    /// Waits for the task to finish; throws what it threw, or why it did not finish.
    ///
    /// - Throws: see ``ChildProcess/value-9ekns``.
    public var value: Void {
        get async throws { _ = try await outcome() }
    }
}

/// For tests: code run at the start of the blocking part of every start, with the child's name
/// (to hold starts of chosen children where they would block). `nil`, costing one atomic load,
/// outside tests.
enum StartHook {
    private static let installed = Atomic<Bool>(false)
    private static let hook = Mutex<(@Sendable (String) -> Void)?>(nil)

    static func set(_ body: (@Sendable (String) -> Void)?) {
        hook.withLock { $0 = body }
        installed.store(body != nil, ordering: .releasing)
    }

    static func run(_ name: String) {
        guard installed.load(ordering: .acquiring), let body = hook.withLock({ $0 }) else { return }
        body(name)
    }
}

/// Default names: `ChildProcess-1`, `ChildProcess-2`, ... (CPython's `Process-N`).
enum ChildNumbering {
    private static let counter = Atomic<Int>(0)
    static func next() -> Int { counter.add(1, ordering: .relaxed).newValue }
}
