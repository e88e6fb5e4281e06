import CMultiprocessing

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The sandbox's init: pid 1 of its PID namespace (see ``SandboxSupervisor``). Applies every
/// restriction to itself in order — file-system view, host name, loopback, limits,
/// credentials, `no_new_privs`, Landlock — so that the task it forks inherits them all. The task
/// installs the seccomp filter itself, first thing, tells the parent the sandbox is in force and
/// hands the filter's listener over: the init answers the filter's notifications, so it must
/// never be under the filter itself. Then the init stays to reap and to answer.
enum SandboxInit {
    /// Runs the init; returns only in the task process, with everything applied.
    ///
    /// `cgroups` (-1: none) is where the supervisor describes the cgroups it made meanwhile
    /// (``SandboxCgroups/word``), having moved this process into the v2 ones: this process joins
    /// the v1 ones itself, before the limits are set. `network` (-1: none) is where the
    /// supervisor hands over the network namespace it made. `template` (-1: none) is the view
    /// template to enter (``SandboxViewTemplates``), closed before the task is forked.
    static func run(
        _ plan: SandboxPlan, progress start: SandboxProgress, privileged: Bool, cgroups: Int32,
        network: Int32, template: Int32, report: Int32, link: Int32, descriptors: inout [Int32]
    ) {
        // Dies with the supervisor.
        _ = mp_set_parent_death_signal(SIGKILL)
        let sandbox = plan.sandbox
        var progress = start
        var handOver: [Int32] = [-1, -1]
        let task: Int32
        do throws(SandboxError) {
            // Opened while /sys is still visible: the v1 cgroups are joined through them later.
            let cgroupRoots = cgroups >= 0 ? SandboxCgroups.openHierarchies(plan.cgroupHierarchies) : []
            let visible = try fileSystem(plan, template: template, link: link, progress: &progress)
            if template >= 0 { close(template) }
            try setHostname(sandbox, progress: &progress)
            if network >= 0 { try enterNetwork(from: network, progress: &progress) }
            // Before the limits and the task: what this process forks from here on is born in them.
            var ownCgroups = cgroups >= 0 ? awaitCgroups(cgroups) : SandboxCgroups()
            let failures = ownCgroups.joinWithCallingThread(through: cgroupRoots)
            for root in cgroupRoots { close(root.fd) }
            for (restriction, reason) in failures where sandbox.enforcement == .required {
                throw .unavailable(restriction, reason: reason)  // Best effort: resource limits instead.
            }
            try applyToSelf(
                sandbox, cgroups: ownCgroups, visible: visible, privileged: privileged, progress: &progress)
            if !plan.notifyingFilter.isEmpty {
                do throws(SystemError) {
                    let pair = try Syscall.seqpacketPair()
                    handOver = [pair.0, pair.1]
                } catch {
                    throw .setupFailed("\(error)")
                }
            }
            task = fork()
            if task < 0 { throw .setupFailed(SandboxProgress.reason("fork", errno)) }
        } catch {
            SandboxMessage.send(.failed(error), to: link)
            SandboxMessage.mark(started: false, to: report)
            _exit(70)
        }
        if task == 0 {
            close(report)
            if handOver[0] >= 0 {
                close(handOver[0])
                do throws(SandboxError) {
                    try installFilter(plan, handOver: handOver[1], progress: &progress)
                } catch {
                    SandboxMessage.send(.failed(error), to: link)
                    _exit(70)  // Unconfined: it must not run.
                }
            }
            // The group's signals are the task's before the parent hears it is in force: a start
            // that returns may be followed at once by ``ChildProcess/terminate()``, whose SIGTERM
            // an inherited SIG_IGN here would drop (the task then ran on, never ending).
            resetGroupSignals()
            // In force: the parent's start returns. The pipe to the parent is closed before
            // anything of the task runs.
            SandboxMessage.send(.applied(progress.report), to: link)
            close(link)
            becomeTask(plan, descriptors: descriptors)
            return
        }
        close(link)
        var listener: Int32 = -1
        if handOver[0] >= 0 {
            close(handOver[1])
            listener = receiveListener(from: handOver[0])
            close(handOver[0])
        }
        SandboxMessage.mark(started: true, to: report)
        // Nothing of the task's stays open here (its channel ends, its stdout pipe).
        let reportFD = fcntl(report, F_DUPFD_CLOEXEC, 100)
        let listenerFD = listener >= 0 ? fcntl(listener, F_DUPFD_CLOEXEC, 101) : -1
        _ = dup2(reportFD, 3)
        if listenerFD >= 0 { _ = dup2(listenerFD, 4) }
        mp_close_from(listenerFD >= 0 ? 5 : 4)
        let execOnce = plan.program != nil && !(sandbox.systemCalls?.allowsExec ?? true)
        mp_sb_serve_init(task, listenerFD >= 0 ? 4 : -1, 3, execOnce ? 1 : 0)
    }

    /// A direct start's task (``SandboxDirectStart``): applies every restriction to itself in
    /// the order the init applies them in a supervised start, hands the filter's listener to
    /// its init on `handover`, tells the parent the sandbox is in force (with its mount
    /// namespace, taken down after the join) and returns, confined. Its PID, IPC and UTS
    /// namespaces are its init's. `network` is a namespace made ahead, or -1; `template` the
    /// view template to enter, or -1. A restriction that cannot be applied ends this process
    /// before anything of the task runs, with the typed error on `link`.
    static func confine(
        _ plan: SandboxPlan, handover: Int32, template: Int32, network: Int32, link: Int32,
        descriptors: [Int32]
    ) {
        let sandbox = plan.sandbox
        var progress = SandboxProgress(enforcement: sandbox.enforcement)
        var mountNamespace: Int32 = -1
        do throws(SandboxError) {
            if sandbox.isolatesProcesses { try progress.apply(.processes) { nil } }
            if sandbox.isolatesIPC { try progress.apply(.ipc) { nil } }
            // Before the view hides /sys: the parent made them meanwhile.
            var cgroups = plan.cgroupsFollow ? awaitCgroups(onLink: link) : SandboxCgroups()
            for (restriction, reason) in cgroups.joinWithCallingProcess()
            where sandbox.enforcement == .required {
                throw .unavailable(restriction, reason: reason)  // Best effort: resource limits instead.
            }
            let visible = try fileSystem(plan, template: template, link: link, progress: &progress)
            if template >= 0 { close(template) }
            if progress.report.isApplied(.fileSystem) {
                mountNamespace = open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC)
            }
            try setHostname(sandbox, progress: &progress)
            if sandbox.network == .none { try ownNetwork(premade: network, progress: &progress) }
            try applyToSelf(
                sandbox, cgroups: cgroups, visible: visible, privileged: true, progress: &progress)
            if !plan.notifyingFilter.isEmpty {
                try installFilter(plan, handOver: handover, progress: &progress)
            } else {
                close(handover)
            }
        } catch {
            SandboxMessage.send(.failed(error), to: link)
            _exit(70)  // Unconfined: it must not run.
        }
        // The group's signals are the task's before the parent hears it is in force (as above).
        resetGroupSignals()
        // In force: the parent's start returns. The link is closed before anything of the task runs.
        SandboxMessage.send(.applied(progress.report), to: link, attaching: mountNamespace)
        close(link)
        becomeTask(plan, descriptors: descriptors)
    }

    /// The restrictions an init (or a direct start's task) applies to itself once its view and
    /// network are in place, in this order: the cgroups' record and namespace, the limits, the
    /// credentials, Landlock.
    private static func applyToSelf(
        _ sandbox: Sandbox, cgroups: SandboxCgroups, visible: [SandboxMounts.Visible], privileged: Bool,
        progress: inout SandboxProgress
    ) throws(SandboxError) {
        try record(cgroups, progress: &progress)
        try limits(sandbox.limits, progress: &progress)
        try SandboxCredentials.drop(sandbox, privileged: privileged, progress: &progress)
        if sandbox.usesLandlock {
            var abi: Int?
            let ownView = progress.report.isApplied(.fileSystem)
            try progress.apply(.landlock) {
                SandboxLandlock.apply(sandbox, visible: visible, ownView: ownView, abi: &abi)
            }
            progress.report.landlockABI = abi
        }
    }

    /// The sandbox's host name, in its own UTS namespace.
    private static func setHostname(_ sandbox: Sandbox, progress: inout SandboxProgress) throws(SandboxError)
    {
        guard let hostname = sandbox.hostname else { return }
        try progress.apply(.hostname) {
            let bytes = Array(hostname.utf8)
            return SandboxProgress.check("sethostname", sethostname(bytes, bytes.count))
        }
    }

    /// A direct start's cgroups, described by the parent on the link once it has made them
    /// (its length, then ``SandboxCgroups/word``). Without a word (the parent is gone), this
    /// process ends: nothing of the task has run.
    private static func awaitCgroups(onLink link: Int32) -> SandboxCgroups {
        func readExactly(_ count: Int) -> [UInt8] {
            var bytes = [UInt8](repeating: 0, count: count)
            var done = 0
            while done < count {
                let n = bytes.withUnsafeMutableBytes { read(link, $0.baseAddress! + done, count - done) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { _exit(70) }
                done += n
            }
            return bytes
        }
        let length = readExactly(4).withUnsafeBytes {
            UInt32(littleEndian: $0.loadUnaligned(as: UInt32.self))
        }
        guard length < 1 << 16, let cgroups = SandboxCgroups(word: readExactly(Int(length))) else {
            _exit(70)
        }
        return cgroups
    }

    /// A direct start's network namespace: the one made ahead, else one of its own (this
    /// process is still privileged), with its loopback up.
    private static func ownNetwork(premade: Int32, progress: inout SandboxProgress) throws(SandboxError) {
        try progress.apply(.network) {
            if premade >= 0 {
                let entered = mp_sb_setns(premade, SandboxCredentials.Namespace.network)
                close(premade)
                if let failure = SandboxProgress.failure("setns(CLONE_NEWNET)", entered) { return failure }
            } else if let failure = SandboxProgress.failure(
                "unshare(CLONE_NEWNET)", mp_sb_unshare(SandboxCredentials.Namespace.network))
            {
                return failure
            }
            return SandboxProgress.failure("bringing up lo", mp_sb_loopback_up())
        }
    }

    /// In the task: installs the filter with a listener and hands the listener to the init;
    /// where the kernel has no listeners, a filter that kills (denials then go unnamed).
    private static func installFilter(_ plan: SandboxPlan, handOver: Int32, progress: inout SandboxProgress)
        throws(SandboxError)
    {
        // Installed as packed: unpacking here, in a fresh child, cost more than the call.
        var fd = plan.notifyingFilter.withUnsafeBufferPointer {
            mp_sb_seccomp_install_packed($0.baseAddress, Int32($0.count), 1)
        }
        if fd < 0 {
            fd = plan.killingFilter.withUnsafeBufferPointer {
                mp_sb_seccomp_install_packed($0.baseAddress, Int32($0.count), 0)
            }
            let failed = fd
            try progress.apply(.systemCallFilter) { SandboxProgress.failure("seccomp", failed) }
            fd = -1
        } else {
            try progress.apply(.systemCallFilter) { nil }
        }
        let descriptors = fd >= 0 ? [fd] : []
        var message: UInt8 = fd >= 0 ? 1 : 0
        _ = descriptors.withUnsafeBufferPointer {
            mp_sendmsg_fds(handOver, &message, 1, $0.baseAddress, Int32($0.count), 0)
        }
        if fd >= 0 { close(fd) }
        close(handOver)
    }

    /// In the init: the filter's listener, or -1 (no listener, or the task ended first).
    private static func receiveListener(from handOver: Int32) -> Int32 {
        var message: UInt8 = 0
        var fds: [Int32] = [-1]
        var count: Int32 = 0
        var notes: Int32 = 0
        let n = mp_recvmsg_fds(handOver, &message, 1, &fds, 1, &count, 0, &notes)
        return n == 1 && message == 1 && count == 1 ? fds[0] : -1
    }

    /// Enters the network namespace the supervisor made (or, best effort, records why there is
    /// none) and brings up its loopback. Without a word from the supervisor (it failed a
    /// required namespace, and reports that itself, or is gone), this process ends: nothing of
    /// the task has run.
    private static func enterNetwork(from socket: Int32, progress: inout SandboxProgress) throws(SandboxError)
    {
        var message = [UInt8](repeating: 0, count: 512)
        var fds: [Int32] = [-1]
        var count: Int32 = 0
        var notes: Int32 = 0
        let n = mp_recvmsg_fds(socket, &message, message.count, &fds, 1, &count, 0, &notes)
        close(socket)
        guard n >= 1 else { _exit(70) }
        guard message[0] == 1, count == 1 else {
            if count == 1 { close(fds[0]) }
            let reason = String(decoding: message[1..<n], as: UTF8.self)
            try progress.skip(.network, reason.isEmpty ? "no network namespace received" : reason)
            return
        }
        let entered = mp_sb_setns(fds[0], SandboxCredentials.Namespace.network)
        close(fds[0])
        try progress.apply(.network) {
            if let failure = SandboxProgress.failure("setns(CLONE_NEWNET)", entered) { return failure }
            return SandboxProgress.failure("bringing up lo", mp_sb_loopback_up())
        }
    }

    /// Waits for the supervisor's description of the cgroups it made (``SandboxCgroups/word``;
    /// it moved this process into the v2 ones already; none where it could not make them: best
    /// effort, resource limits instead). Without a word (the supervisor failed a required
    /// cgroup, and reports that itself, or is gone), this process ends: nothing of the task has
    /// run.
    private static func awaitCgroups(_ word: Int32) -> SandboxCgroups {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1024)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(word, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            bytes += chunk[0..<n]
        }
        close(word)
        guard let cgroups = SandboxCgroups(word: bytes) else { _exit(70) }
        return cgroups
    }

    /// Reports the cgroups this process is in, and makes them the root of its cgroup namespace.
    private static func record(_ cgroups: SandboxCgroups, progress: inout SandboxProgress)
        throws(SandboxError)
    {
        if let memory = cgroups.memory {
            progress.report.memoryLimitMechanism = memory.version
            try progress.apply(.memoryLimit) { nil }
        }
        if let pids = cgroups.pids {
            progress.report.processLimitMechanism = pids.version
            try progress.apply(.processLimit) { nil }
        }
        progress.report.cgroupDirectories = cgroups.directories
        // The cgroup tree seen from inside starts at the sandbox's own.
        if !cgroups.directories.isEmpty { _ = mp_sb_unshare(SandboxCredentials.Namespace.cgroup) }
    }

    /// The file-system view, or the paths Landlock allows where there is none. Entered from
    /// `template` where the plan says so, or built (and, where the plan asks for one, a template
    /// made on the way and sent to the parent on `link`).
    private static func fileSystem(
        _ plan: SandboxPlan, template: Int32, link: Int32, progress: inout SandboxProgress
    )
        throws(SandboxError) -> [SandboxMounts.Visible]
    {
        let sandbox = plan.sandbox
        let runningFiles = plan.runningFiles
        // Without a view of its own, the sandbox sees this machine's paths: Landlock allows those listed.
        var hostPaths = sandbox.readablePaths.map {
            SandboxMounts.Visible(path: $0, writable: false, isDirectory: mp_sb_path_is_directory($0) == 1)
        }
        hostPaths += sandbox.writablePaths.map {
            SandboxMounts.Visible(path: $0, writable: true, isDirectory: mp_sb_path_is_directory($0) == 1)
        }
        hostPaths += runningFiles.map { SandboxMounts.Visible(path: $0, writable: false, isDirectory: false) }
        guard sandbox.isolatesFileSystem else { return hostPaths }
        let ownsProcFS = progress.report.isApplied(.processes)
        do {
            var view = plan.view
            // A template is made for a sandbox with its own PID namespace or without, as asked:
            // one that went without under best effort builds its view itself.
            if ownsProcFS != sandbox.isolatesProcesses { view = .none }
            var visible: [SandboxMounts.Visible]
            var temporaryFailure: String?
            switch view {
            case .enter(let shared):
                let own = try SandboxMounts.enterCopy(
                    of: template, sandbox, ownsProcFS: ownsProcFS, keeping: runningFiles)
                visible = shared + own.visible
                temporaryFailure = own.temporaryDirectoryFailure
            case .build:
                let built = try SandboxMounts.build(
                    sandbox, automaticPaths: runningFiles, ownsProcFS: ownsProcFS, asTemplate: true)
                let shared = built.visible
                sendTemplate(built.namespace, shared, to: link)
                let own = try SandboxMounts.enterCopy(
                    of: nil, sandbox, ownsProcFS: ownsProcFS, keeping: runningFiles)
                visible = shared + own.visible
                temporaryFailure = own.temporaryDirectoryFailure
            case .none:
                let built = try SandboxMounts.build(
                    sandbox, automaticPaths: runningFiles, ownsProcFS: ownsProcFS)
                visible = built.visible
                temporaryFailure = built.temporaryDirectoryFailure
            }
            try progress.apply(.fileSystem) { nil }
            if sandbox.temporaryDirectorySize != nil {
                try progress.apply(.temporaryDirectory) { temporaryFailure }
            }
            return visible
        } catch {
            guard case .unavailable(let restriction, let reason) = error else { throw error }
            try progress.skip(restriction, reason)
            return hostPaths
        }
    }

    /// Sends `namespace`, a view template (nothing of a sandbox's own in it), to the parent on
    /// `link`, and closes it. Best effort: without it, the next start builds again.
    private static func sendTemplate(_ namespace: Int32, _ visible: [SandboxMounts.Visible], to link: Int32) {
        guard namespace >= 0 else { return }
        defer { close(namespace) }
        guard let frame = SandboxMessage.frame(.viewTemplate(visible)) else { return }
        let fds = [namespace]
        _ = fds.withUnsafeBufferPointer { fds in
            mp_sendmsg_fds(link, frame, frame.count, fds.baseAddress, 1, 0)
        }
    }

    /// The resource limits; memory and processes only where no cgroup holds them.
    private static func limits(_ limits: SandboxLimits, progress: inout SandboxProgress) throws(SandboxError)
    {
        func set(_ which: Int32, _ soft: UInt64, _ hard: UInt64, _ restriction: SandboxRestriction)
            throws(SandboxError)
        {
            try progress.apply(restriction) {
                SandboxProgress.failure(
                    "setrlimit", mp_sb_set_rlimit(mp_sb_rlimit_resource(which), soft, hard))
            }
        }
        if let cpu = limits.cpuTime {
            let (seconds, attoseconds) = cpu.components
            let whole = UInt64(max(1, seconds + (attoseconds > 0 ? 1 : 0)))
            try set(0, whole, whole + 1, .cpuLimit)
        }
        if let memory = limits.memory, progress.report.memoryLimitMechanism == nil {
            let mapped =
                (SandboxCgroups.readText("/proc/self/status") ?? "").split(separator: "\n").first {
                    $0.hasPrefix("VmSize:")
                }.flatMap { UInt64($0.split(separator: " ").dropFirst().first ?? "") } ?? 0
            let limit = UInt64(memory) + mapped * 1024 + (256 << 20)
            try set(1, limit, limit, .memoryLimit)
            progress.report.memoryLimitMechanism = .resourceLimit
        }
        if let processes = limits.processes, progress.report.processLimitMechanism == nil {
            try set(2, UInt64(processes), UInt64(processes), .processLimit)
            progress.report.processLimitMechanism = .resourceLimit
        }
        if let files = limits.openFiles { try set(3, UInt64(files), UInt64(files), .openFileLimit) }
        if let size = limits.fileSize { try set(4, UInt64(size), UInt64(size), .fileSizeLimit) }
        if !limits.allowsCoreDumps { try set(5, 0, 0, .coreDumps) }
    }

    /// Default dispositions for the signals the supervisor and the init ignore
    /// (``SandboxSupervisor/groupSignals``): in the task they do what they do anywhere.
    private static func resetGroupSignals() {
        for signal in SandboxSupervisor.groupSignals { _ = Glibc.signal(signal, SIG_DFL) }
    }

    /// The task process (its group's signals already reset, ``resetGroupSignals()``): death with
    /// the init, and the program, if it runs one.
    private static func becomeTask(_ plan: SandboxPlan, descriptors: [Int32]) {
        if mp_die_with_parent(getppid()) != 0 { _exit(1) }
        guard let program = plan.program else { return }
        SandboxProgramLauncher.exec(program, descriptors: descriptors)
    }
}
