import CMultiprocessing

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The child's side: how a copy of the binary becomes a child instead of running `main`.
///
/// The parent sets ``variable`` in the child's environment. A C constructor sees it before
/// `main` and calls ``_swiftMultiprocessingChildEntry(_:)``, which never returns. Where
/// constructors do not run, call ``bootstrap()`` first thing in `main`.
enum ChildEntry {
    static let variable = MP_CHILD_ENV

    /// Parses `"spawn:<parent pid>"` / `"forkserver:<parent pid>[:bound]"` /
    /// `"tracker:<creator pid>"` and serves accordingly.
    static func enter(spec: String) -> Never {
        let parts = spec.split(separator: ":")
        let bound = parts.count == 3 && parts[0] == "forkserver" && parts[2] == "bound"
        guard parts.count == 2 || bound, let parent = Int32(parts[1]) else {
            report("swift-multiprocessing: malformed \(variable)=\(spec)")
            exit(64)
        }
        switch parts[0] {
        case "spawn":
            // Die with the parent, taking everything we start along; and make sure it did not
            // die before we got here.
            if mp_die_with_parent(parent) != 0 { _exit(1) }
            // fd 3 is the control channel; keep it from our own children. Failing, it is not
            // open: no channel, no parent to report to (71: EX_OSERR).
            do throws(SystemError) { try Syscall.setCloseOnExec(3) } catch { _exit(71) }
            ChildRuntime.serve(controlFD: 3, mainThread: true)
        case "forkserver":
            // The server starts nothing but children, which take their own trees down when it
            // dies: SIGKILL is enough for it. (Fails only for an invalid signal.)
            _ = mp_set_parent_death_signal(SIGKILL)
            if getppid() != parent { _exit(1) }
            // The loader has bound everything already (the parent set LD_BIND_NOW for that).
            if bound { unsetenv("LD_BIND_NOW") }
            ForkWarmUp.forkServer()
            let channel = mp_forkserver_serve(3)  // Returns in each forked child only.
            ChildRuntime.serve(controlFD: channel, mainThread: true)
        case "tracker":
            // No parent-death signal: the tracker's work starts when its creator dies.
            mp_resource_tracker_serve(3)
        default:
            report("swift-multiprocessing: unknown start kind in \(variable)=\(spec)")
            exit(64)
        }
    }
}

/// Writes a line to stderr without touching C's `FILE` globals. A failed write is dropped:
/// stderr is where failures are told, so there is nowhere left to tell this one.
func report(_ line: String) {
    let bytes = Array((line + "\n").utf8)
    var written = 0
    while written < bytes.count {
        let n = bytes.withUnsafeBytes { try? Syscall.write(2, $0.baseAddress! + written, $0.count - written) }
        guard let n, n > 0 else { return }
        written += n
    }
}

/// Runs the child's side of a launch if this process was started as a child, and never returns
/// then; returns at once otherwise. Called automatically before `main` by a C constructor on
/// Linux and macOS; call it first thing in `main` only on platforms or link modes where
/// constructors do not run.
public func bootstrap() {
    guard let spec = getenv(ChildEntry.variable) else { return }
    let text = String(cString: spec)
    unsetenv(ChildEntry.variable)
    ChildEntry.enter(spec: text)
}

/// Called by the C constructor when the child variable is set: the library's own entry point,
/// not API (internal, so it is not part of the module's interface; the linker still sees it).
@_cdecl("swift_multiprocessing_child_entry")
func _swiftMultiprocessingChildEntry(_ spec: UnsafePointer<CChar>) {
    ChildEntry.enter(spec: String(cString: spec))
}

/// Receives the launch request on the control channel, runs the task, sends its outcome back
/// and exits.
enum ChildRuntime {
    static func serve(controlFD: Int32, mainThread: Bool) -> Never {
        // The parent's end of the channel closes when it dies: the fallback for the
        // parent-death signal (absent outside Linux, or blocked or ignored by a task). The main
        // thread watches it once the task runs; a forked child's only thread runs the task, so
        // it needs a thread of its own (a thread per child costs starts measurably).
        // Either can fail only for want of a descriptor or a thread: the parent-death signal
        // remains, so the child runs on without this fallback.
        let lifeline = mainThread ? mp_lifeline_open(controlFD) : -1
        if !mainThread { _ = mp_watch_parent_channel(controlFD) }
        let socket = FramedSocket(fd: controlFD)
        // A crash is reported to the parent on the control channel, with where it happened.
        // Without the handler (no memory for its stack), a crash is still seen as a signal.
        _ = mp_crash_handler_install(controlFD)
        let frame: Frame
        do {
            frame = try socket.receiveBlocking()
        } catch {
            _exit(error == .peerClosed ? 0 : 65)  // The parent went away before telling us anything.
        }
        guard frame.kind == .launch else { _exit(65) }
        let request: LaunchRequest
        do {
            request = try TaskCoding.decode(LaunchRequest.self, from: frame.payload)
        } catch {
            for fd in frame.descriptors { Syscall.close(fd) }
            finish(socket, .failure(ErrorReport(ProcessError.codec(error))))
        }
        var descriptors = frame.descriptors
        if let plan = request.sandbox {
            // Confined before anything of the task is decoded; returns in the task process only.
            SandboxSupervisor.enter(plan, controlFD: controlFD, lifeline: lifeline, descriptors: &descriptors)
        }
        if request.capturesStandardOutput, let output = descriptors.popLast() {
            // Captured stdout: the pipe the parent sent last.
            fflush(nil)
            do throws(SystemError) {
                try Syscall.dup2(output, 1)
            } catch {
                finish(socket, .failure(ErrorReport(ProcessError.launchFailed(error))))
            }
            Syscall.close(output)
        }
        CurrentProcess.becomeChild(named: request.processName)
        ChildObservation.enter(request.observation, descriptors: &descriptors, forked: !mainThread)
        let incoming = DescriptorTransfer.Incoming(descriptors)
        // The name `ps`, `top` and /proc/<pid>/comm show (15 bytes at most); this thread is the
        // process's main thread, whose name is the process's.
        mp_name_current_thread(request.processName)
        guard let type = TypeIdentity.resolve(request.typeName) as? any ProcessTask.Type else {
            incoming.closeUnclaimed()
            let why = ProcessError.unsupportedTaskType(
                typeName: request.typeName, reason: "this binary has no ProcessTask type of that name")
            finish(socket, .failure(ErrorReport(why)))
        }
        if !mainThread {
            // A forked child: the runtime's worker threads are gone, so run the task here.
            let executor = InlineExecutor()
            Task(executorPreference: executor) {
                let outcome = await execute(type, payload: request.payload, descriptors: incoming)
                finish(socket, outcome)
            }
            executor.runForever()
        }
        Task.detached {
            let outcome = await execute(type, payload: request.payload, descriptors: incoming)
            finish(socket, outcome)
        }
        mp_serve_main_queue_forever(lifeline)
    }

    static func execute<T: ProcessTask>(
        _ type: T.Type, payload: [UInt8], descriptors: DescriptorTransfer.Incoming
    ) async -> TaskOutcome {
        let task: T
        do {
            task = try TaskCoding.decode(T.self, from: payload, descriptors: descriptors)
        } catch {
            descriptors.closeUnclaimed()
            return .failure(ErrorReport(ProcessError.codec(error)))
        }
        descriptors.closeUnclaimed()
        do {
            let output = try await ChildObservation.running { try await task.run() }
            return .success(try TaskCoding.encodeOutput(output))
        } catch {
            return .failure(ErrorReport(error))
        }
    }

    /// Sends the outcome, flushes stdio and exits: 0 after success, 1 after a thrown error
    /// (CPython's `exitcode` convention).
    static func finish(_ socket: FramedSocket, _ outcome: TaskOutcome) -> Never {
        var code: Int32 = 0
        if case .failure = outcome { code = 1 }
        if let bytes = try? TaskCoding.encode(outcome) { try? socket.sendBlocking(.outcome, bytes) }
        // Everything the task printed reaches the parent's terminal; then leave without running
        // the parent program's exit handlers, which belong to the parent (CPython's `os._exit`).
        fflush(nil)
        mp_child_exit(code, socket.fd)
    }
}
