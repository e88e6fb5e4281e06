import Synchronization

/// Runs, in the parent and before a `.fork`, the runtime work that a forked child's own start
/// would otherwise do first.
///
/// A forked child inherits every lock as it was at the fork. The Swift runtime makes type
/// metadata, conformance records and name lookups on first use under process-wide locks; if
/// another thread of the parent held one of them at the fork, a child that needs a new entry
/// waits for ever (seen: a child blocked decoding its ``LaunchRequest`` while the parent's other
/// threads were busy; and on the conformance cache's in its first job). Entries the parent
/// already made are read without a lock, so the library's start path in the child (the launch
/// request, the task type by name, the executor the task runs on, the outcome) is made here
/// once, and the task type on each fork. The task's own code keeps the hazard
/// that ``StartMethod/fork`` documents.
enum ForkWarmUp {
    private static let launchPath: Void = {
        codecs
        controlChannel
        AfterFork.prepareForFork()
        // The child runs its task on an InlineExecutor (seen: a child blocked on the
        // conformance cache's lock in its first job there): one empty task, run here.
        let executor = InlineExecutor()
        Task(executorPreference: executor) {}
        while executor.runPending() {}
    }()

    /// The child's first and last steps on its control channel: a blocking receive of a frame
    /// that carries a descriptor, the descriptors taken in, and a blocking send. The parent's own
    /// channel work is async and may never have run them (seen: a child blocked in its first
    /// `receiveBlocking` on the conformance cache's lock, which a parent thread held at the fork).
    private static let controlChannel: Void = {
        guard let pair = try? Syscall.socketPair() else { return }
        let parent = FramedSocket(fd: pair.0)  // Each closes its descriptor when released.
        let child = FramedSocket(fd: pair.1)
        guard (try? parent.sendBlocking(.launch, [0], descriptors: [pair.0])) != nil,
            let frame = try? child.receiveBlocking()
        else { return }
        DescriptorTransfer.Incoming(frame.descriptors).closeUnclaimed()
        _ = try? child.sendBlocking(.outcome, [0])
        _ = try? parent.receiveBlocking(timeout: .seconds(1))
    }()

    /// The launch request's and the outcome's coding: pure runtime work, no thread started.
    private static let codecs: Void = {
        let request = LaunchRequest(
            typeName: "", processName: "", payload: [0], capturesStandardOutput: true,
            observation: LaunchObservation(setupType: "", forwardedLevel: .info, traceContext: ["": ""]),
            sandbox: [0])
        if let bytes = try? TaskCoding.encode(request) {
            _ = try? TaskCoding.decode(LaunchRequest.self, from: bytes)
        }
        let failure = TaskOutcome.failure(ErrorReport(ProcessError.codec(.lengthTooLarge(0))))
        for outcome in [failure, .success([0])] {
            if let bytes = try? TaskCoding.encode(outcome) {
                _ = try? TaskCoding.decode(TaskOutcome.self, from: bytes)
            }
        }
    }()

    /// In the fork server, before it serves: the type metadata, conformances and name lookups
    /// of a child's start (the launch request, a sandbox's plan, report and messages) are made
    /// here once, not again in every child, which starts with the server's cold caches (2.4 ms
    /// of a sandboxed start's CPU went there). Single-threaded, and no thread is started: the
    /// server stays safe to fork.
    static func forkServer() {
        codecs
        var plan = SandboxPlan(
            sandbox: .strict,
            program: SandboxProgramPlan(executable: "/", arguments: [""], environment: [""]),
            runningFiles: ["/"], cgroupHierarchies: [], notifyingFilter: [0], killingFilter: [0])
        plan.cgroupHierarchies = [.init(version: .cgroupV1, controllers: ["memory"], directory: "/")]
        plan.view = .enter([SandboxMounts.Visible(path: "/", writable: false, isDirectory: true)])
        plan.premadeNetwork = true
        _ = SandboxPlan(bytes: plan.bytes)
        _ = SandboxCgroups(word: SandboxCgroups().word)
        var report = SandboxReport()
        report.applied = SandboxRestriction.allCases
        report.notApplied = [.network: ""]
        report.cgroupDirectories = ["/"]
        var reader = SandboxMessage.Reader()
        for message in [
            SandboxMessage.applied(report), .failed(.unavailable(.fileSystem, reason: "")),
            .exited(SandboxExit(verdict: .cpuLimit, status: 0, cpuMicroseconds: 0, cgroupsRemoved: false)),
        ] {
            if let frame = SandboxMessage.frame(message) { reader.append(frame[...]) }
        }
        while reader.next() != nil {}
    }

    /// Warms the child's start path for a task of type `typeName` (a ``TypeIdentity`` name).
    static func prepare(typeName: String) {
        launchPath
        if let type = TypeIdentity.resolve(typeName) as? any ProcessTask.Type { askCoders(about: type) }
    }

    /// The questions the child's decoder asks of the task's type, and its encoder of the
    /// output's, asked here: the runtime keeps the answers, which the child then only reads.
    private static func askCoders<T: ProcessTask>(about: T.Type) {
        _ = T.self as? any BinaryDecodingSpecial.Type
        _ = T.Output.self as? any BinaryEncodingSpecial.Type
    }
}
