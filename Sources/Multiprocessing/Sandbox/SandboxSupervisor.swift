import CMultiprocessing

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The child the parent started, when it is sandboxed and the start is not direct
/// (``SandboxDirectStart``): it stays outside the sandbox and watches it.
///
/// Three processes, because a PID namespace only holds the *children* of the process that made
/// it, and the first of them is the namespace's init (which ignores signals it has no handler
/// for, and takes every process of the namespace along when it dies):
///
/// - the **supervisor** (this process, the pid the parent knows, leading the process group):
///   enters the user namespace (unprivileged) and makes the PID, IPC and UTS namespaces, forks
///   the init, then, while the init builds its view, makes the network namespace and the
///   cgroups and hands them over (the init joins v1 cgroups itself; this process moves it into
///   v2 ones, and stays outside); at the end it reads the
///   cgroups' counters, tells the parent why the sandbox ended the task (``SandboxVerdict``) and ends the
///   way the task ended. The parent removes the cgroups.
/// - the **init** (pid 1 inside, ``SandboxInit``): builds the file-system view, brings up the
///   loopback, sets the limits, drops privileges, applies Landlock, forks the task, then reaps
///   and answers the seccomp filter's notifications.
/// - the **task** (pid 2 inside): installs the seccomp filter, tells the parent the sandbox is
///   in force, hands the filter's listener to the init, and returns to the child runtime, which
///   runs the Swift task as in any child (or executes the program).
///
/// Every step runs while the process is single-threaded (from the C constructor, before any
/// thread of the Swift runtime starts), which a user namespace requires and `fork` needs. The
/// task never holds the pipe to the parent, so nothing it writes can pass for a report.
enum SandboxSupervisor {
    /// Signals that go to the whole process group (``ChildProcess/terminate()``, Ctrl-C): the
    /// task decides what they do; the supervisor and the init outlive them to report.
    static let groupSignals: [Int32] = [SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGPIPE, SIGALRM]

    /// Applies the plan (``SandboxPlan/bytes``) around the calling child; returns only in the
    /// task process. `descriptors` are the launch frame's: the last one is the pipe to the
    /// parent, taken here.
    static func enter(_ encoded: [UInt8], controlFD: Int32, lifeline: Int32, descriptors: inout [Int32]) {
        guard let link = descriptors.popLast() else { _exit(70) }
        guard let plan = SandboxPlan(bytes: encoded) else {
            SandboxMessage.send(.failed(.setupFailed("the sandbox's plan does not decode")), to: link)
            _exit(70)
        }
        let sandbox = plan.sandbox
        let privileged = SandboxCredentials.isPrivileged
        var progress = SandboxProgress(enforcement: sandbox.enforcement)
        func abandon(_ error: SandboxError) -> Never {
            SandboxMessage.send(.failed(error), to: link)
            _exit(70)
        }
        // The view template to enter, sent just before the link (``SandboxViewTemplates``).
        var template: Int32 = -1
        if case .enter = plan.view {
            guard let fd = descriptors.popLast() else { abandon(.setupFailed("no view template was sent")) }
            template = fd
        }
        // A network namespace made ahead (``SandboxNetworkSupply``), sent before the template.
        var premadeNetwork: Int32 = -1
        if plan.premadeNetwork {
            guard let fd = descriptors.popLast() else {
                abandon(.setupFailed("no network namespace was sent"))
            }
            premadeNetwork = fd
        }
        // A direct start: this process is the task of an init the fork server made in the
        // sandbox's namespaces, and confines itself (``SandboxDirectStart``).
        let handover = mp_sb_direct_handover()
        if handover >= 0 {
            SandboxInit.confine(
                plan, handover: handover, template: template, network: premadeNetwork, link: link,
                descriptors: descriptors)
            return
        }
        // The network namespace, the costliest to make (~1 ms of kernel work), is made after
        // the fork, while the init builds its view, and handed to it (``makeNetwork``).
        let defersNetwork = sandbox.network == .none
        do throws(SandboxError) {
            try SandboxCredentials.unshare(
                sandbox, privileged: privileged, deferringNetwork: defersNetwork, progress: &progress)
        } catch {
            abandon(error)
        }
        // The cgroups: made and limited after the fork, while the init builds its view (off the
        // start's path), and described to the init on `word`; it joins them before it forks the
        // task. This process stays outside. A v1 cgroup the init joins itself, at once and
        // cheaply (``SandboxCgroups/joinWithCallingThread(through:)``); a v2 one only takes whole
        // processes, a move that waits for an RCU grace period (milliseconds, more on a busy
        // machine): this process moves the init before it sends the word.
        let limits = sandbox.limits
        var word: [Int32] = [-1, -1]
        if limits.memory != nil || limits.processes != nil, mp_pipe(&word) != 0 {
            abandon(.setupFailed(SandboxProgress.reason("pipe", errno)))
        }
        var network: [Int32] = [-1, -1]
        if defersNetwork {
            do throws(SystemError) {
                let pair = try Syscall.seqpacketPair()
                network = [pair.0, pair.1]
            } catch {
                abandon(.setupFailed("\(error)"))
            }
        }
        var report: [Int32] = [-1, -1]
        guard mp_pipe(&report) == 0 else { abandon(.setupFailed(SandboxProgress.reason("pipe", errno))) }
        for signal in groupSignals { _ = Glibc.signal(signal, SIG_IGN) }
        let ownPIDNamespace = progress.report.isApplied(.processes)
        // Without a PID namespace, what the task leaves running when it ends comes here.
        if !ownPIDNamespace { _ = mp_sb_prctl(36, 1, 0, 0, 0) }  // PR_SET_CHILD_SUBREAPER
        let initPID = fork()
        if initPID < 0 { abandon(.setupFailed(SandboxProgress.reason("fork", errno))) }
        if initPID == 0 {
            close(report[0])
            if word[1] >= 0 { close(word[1]) }
            if network[0] >= 0 { close(network[0]) }
            if premadeNetwork >= 0 { close(premadeNetwork) }
            SandboxInit.run(
                plan, progress: progress, privileged: privileged, cgroups: word[0], network: network[1],
                template: template, report: report[1], link: link, descriptors: &descriptors)
            return  // The task.
        }
        close(report[1])
        if template >= 0 { close(template) }
        if network[0] >= 0 {
            close(network[1])
            makeNetwork(
                for: initPID, enforcement: sandbox.enforcement, premade: premadeNetwork, socket: network[0],
                link: link)
            close(network[0])
        }
        var cgroups = SandboxCgroups()
        if word[0] >= 0 {
            close(word[0])
            cgroups = SandboxCgroups.make(
                memory: limits.memory, processes: limits.processes, in: plan.cgroupHierarchies)
            let moved = cgroups.only(.cgroupV2)
            if !moved.directories.isEmpty {
                let kept = join(initPID, to: moved, enforcement: sandbox.enforcement, link: link)
                if cgroups.memory?.version == .cgroupV2 { cgroups.memory = kept.memory }
                if cgroups.pids?.version == .cgroupV2 { cgroups.pids = kept.pids }
            }
            let description = cgroups.word
            _ = description.withUnsafeBytes { write(word[1], $0.baseAddress, $0.count) }
            close(word[1])
        }
        // Off the start's path: the init is at work meanwhile.
        if !cgroups.directories.isEmpty { SandboxCgroups.removeStale(in: plan.cgroupHierarchies) }
        // The task's descriptors are the task's: a copy here would keep its peers from seeing
        // end-of-file when it closes them.
        for fd in descriptors { close(fd) }
        descriptors = []
        supervise(
            initPID: initPID, reportFD: report[0], link: link, lifeline: lifeline, cgroups: cgroups,
            cpuLimit: sandbox.limits.cpuTime, ownPIDNamespace: ownPIDNamespace,
            ownView: sandbox.isolatesFileSystem)
    }

    /// Makes the sandbox's network namespace (unless `premade`, one made ahead, is there) and
    /// hands it to the init over `socket`: a byte 1 and the namespace's descriptor, or (best
    /// effort) 0 and why there is none. This process enters one it makes (it has no socket to use
    /// in it). Where a required one cannot be made, the
    /// start fails here and the init, which waits for it before it forks the task, is ended.
    private static func makeNetwork(
        for initPID: Int32, enforcement: SandboxEnforcement, premade: Int32, socket: Int32, link: Int32
    ) {
        var failure: String?
        var namespace = premade  // Made ahead by the parent: handed on as it is.
        if namespace < 0 {
            failure = SandboxProgress.failure(
                "unshare(CLONE_NEWNET)", mp_sb_unshare(SandboxCredentials.Namespace.network))
        }
        if failure == nil && namespace < 0 {
            namespace = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC)
            if namespace < 0 { failure = SandboxProgress.reason("opening /proc/self/ns/net", errno) }
        }
        if let failure, enforcement == .required {
            _ = kill(initPID, SIGKILL)
            var status: Int32 = 0
            while waitpid(initPID, &status, 0) < 0 && errno == EINTR {}
            SandboxMessage.send(.failed(.unavailable(.network, reason: failure)), to: link)
            _exit(70)
        }
        let message: [UInt8] = failure.map { [0] + Array($0.utf8.prefix(400)) } ?? [1]
        let descriptors = namespace >= 0 ? [namespace] : []
        _ = descriptors.withUnsafeBufferPointer { fds in
            mp_sendmsg_fds(socket, message, message.count, fds.baseAddress, Int32(fds.count), 0)
        }
        if namespace >= 0 { close(namespace) }
    }

    /// Moves the init into `cgroups` (v2): what it joined. Under best effort, what cannot be
    /// joined is removed (the limits then fall back to resource limits); where a required cgroup
    /// cannot be joined, the start fails here and the init is ended.
    private static func join(
        _ initPID: Int32, to cgroups: SandboxCgroups, enforcement: SandboxEnforcement, link: Int32
    ) -> SandboxCgroups {
        guard let failure = cgroups.attach(initPID) else { return cgroups }
        cgroups.remove()
        if enforcement == .required {
            // The init waits for the word before anything of the task runs: nothing ran.
            _ = kill(initPID, SIGKILL)
            var status: Int32 = 0
            while waitpid(initPID, &status, 0) < 0 && errno == EINTR {}
            let restriction: SandboxRestriction = cgroups.memory != nil ? .memoryLimit : .processLimit
            SandboxMessage.send(.failed(.unavailable(restriction, reason: failure)), to: link)
            _exit(70)
        }
        return SandboxCgroups()
    }

    /// Waits for the end, reports it and ends like the task.
    private static func supervise(
        initPID: Int32, reportFD: Int32, link: Int32, lifeline: Int32, cgroups: SandboxCgroups,
        cpuLimit: Duration?,
        ownPIDNamespace: Bool, ownView: Bool
    ) -> Never {
        var reader = SandboxMessage.Reader()
        var record: mp_sb_exit_record?
        // The sandbox's mount namespace, held from its start: it goes to the parent with the
        // last word, so that taking it down (every mount of the view unmounted, an RCU grace
        // period waited for) happens there after the join, not in the init's exit before it.
        var mountNamespace: Int32 = -1
        var started = false
        var failed = false
        reading: while true {
            while let item = reader.next() {
                switch item {
                case .started:
                    started = true
                    if ownView { mountNamespace = open("/proc/\(initPID)/ns/mnt", O_RDONLY | O_CLOEXEC) }
                case .failed: failed = true
                case .message: break
                case .exitRecord(let exit):
                    record = exit
                    break reading
                }
            }
            var fds = [pollfd(fd: reportFD, events: Int16(POLLIN), revents: 0)]
            if lifeline >= 0 { fds.append(pollfd(fd: lifeline, events: mp_hang_up_events(), revents: 0)) }
            if poll(&fds, nfds_t(fds.count), -1) < 0 { continue }
            if fds.count > 1, mp_hung_up(fds[1].revents) != 0 {
                // The parent is gone: so is everything this child started.
                _ = kill(initPID, SIGKILL)
                var status: Int32 = 0
                _ = waitpid(initPID, &status, 0)
                mp_kill_descendants_and_die()
            }
            if fds[0].revents != 0, !reader.fill(from: reportFD) { break }
        }
        var initStatus: Int32 = 0
        while waitpid(initPID, &initStatus, 0) < 0 && errno == EINTR {}
        if !ownPIDNamespace {
            // What the task left running is ours to end (in a PID namespace, the init's end
            // ended it).
            // The scan of /proc only when something is left: it reads every process's stat.
            while mp_sb_has_children() == 1, mp_kill_child_processes() > 0 {
                var status: Int32 = 0
                while waitpid(-1, &status, WNOHANG) > 0 {}
                usleep(1000)
            }
        }
        guard let record else {
            if failed { _exit(70) }  // The init told the parent why.
            if !started {
                SandboxMessage.send(
                    .failed(.setupFailed("the sandbox's init ended (wait status \(initStatus))")), to: link)
                _exit(70)
            }
            mp_sb_exit_like(initStatus)
        }
        let verdict = self.verdict(record, cgroups: cgroups, cpuLimit: cpuLimit)
        // The parent removes the cgroups when it has reaped this process.
        SandboxMessage.send(
            .exited(
                SandboxExit(
                    verdict: verdict, status: record.status, cpuMicroseconds: record.cpu_microseconds,
                    cgroupsRemoved: cgroups.directories.isEmpty)), to: link, attaching: mountNamespace)
        mp_sb_exit_like(record.status)
    }

    /// Why the sandbox ended the task, from its exit record and the cgroups' counters.
    static func verdict(_ record: mp_sb_exit_record, cgroups: SandboxCgroups, cpuLimit: Duration?)
        -> SandboxVerdict?
    {
        if record.denied_call >= 0 {
            return .systemCallDenied(name: SystemCallTable.name(of: record.denied_call))
        }
        let status = record.status
        guard status & 0x7f != 0 else { return nil }  // It exited: whatever it ran into, it handled.
        let signal = status & 0x7f
        if signal == SIGSYS { return .systemCallDenied(name: "unknown (killed by the filter)") }
        if cgroups.memoryKills > 0 { return .memoryLimit }
        if signal == SIGXCPU { return .cpuLimit }
        if signal == SIGKILL, let cpuLimit,
            Double(record.cpu_microseconds) / 1e6 >= Double(cpuLimit.components.seconds)
        {
            return .cpuLimit
        }
        if signal == SIGXFSZ { return .fileSizeLimit }
        if cgroups.processLimitHits > 0 { return .processLimit }
        return nil
    }
}
