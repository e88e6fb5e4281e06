/// How a child process is confined: what it may see, reach and use. Linux only.
///
/// ```swift
/// let child = try ChildProcess(ParseUpload(bytes: upload), sandbox: .strict)
/// try await child.start()          // throws ProcessError.sandbox(...) if a restriction cannot be applied
/// let document = try await child.value
/// ```
///
/// A sandboxed child has no network but its own loopback, sees a read-only file system made of
/// the paths it was given (plus the program and libraries it runs from, a private `/tmp`, a
/// minimal `/dev` and its own `/proc`), sees no other process, has no capabilities and can gain
/// none (`no_new_privs`), runs as ``SandboxUser/nobody`` when started by root (in a user
/// namespace of its own otherwise), is held to ``limits`` and to a system-call filter
/// (``systemCalls``), with Landlock as a second layer where the kernel has it.
///
/// Every restriction asked for is applied before the task runs, or the start fails with
/// ``SandboxError/unavailable(_:reason:)`` naming the restriction and nothing runs — unless
/// ``enforcement`` is ``SandboxEnforcement/bestEffort``, and then ``ChildProcess/sandboxReport``
/// says exactly what was applied. A child stopped by the sandbox ends with a
/// ``SandboxVerdict`` (`cpuLimit`, `memoryLimit`, `systemCallDenied(name:)`, ...) in its
/// ``ChildCrash`` instead of a bare signal.
///
/// Start methods: ``StartMethod/spawn`` and ``StartMethod/forkserver``. ``StartMethod/fork`` is
/// refused: its child has a watchdog thread before it learns of the sandbox, and a user namespace
/// can only be entered by a single-threaded process.
public struct Sandbox: Sendable, Hashable, Codable {
    /// Whether the child reaches the network.
    public var network: SandboxNetwork
    /// Whether the child gets a file-system view of its own (a mount namespace built from
    /// ``readablePaths`` and ``writablePaths``). `false`: it sees this process's file system,
    /// limited only by its user and by Landlock.
    public var isolatesFileSystem: Bool
    /// Paths visible read-only inside (files or directories, at the same place). The running
    /// program and the libraries it has loaded are always visible too.
    public var readablePaths: [String]
    /// Paths visible and writable inside, at the same place.
    public var writablePaths: [String]
    /// The size of a private, empty `/tmp` (a tmpfs counted against the memory limit), or
    /// `nil` for none (then `/tmp` does not exist inside unless a listed path provides it).
    public var temporaryDirectorySize: Int?
    /// Whether this machine's `/dev/shm` is visible (read-write) inside, for
    /// ``SharedMemory/attach(name:)``. Segments passed as task properties travel as descriptors
    /// and need no name: by default `/dev/shm` inside is private and empty.
    public var sharesNamedSharedMemory: Bool
    /// Whether the child gets its own PID namespace: it sees no other process (it cannot signal,
    /// trace or even name one), and everything it starts dies with it.
    public var isolatesProcesses: Bool
    /// Whether the child gets its own System V IPC namespace.
    public var isolatesIPC: Bool
    /// The host name inside (its own UTS namespace), or `nil` to keep this machine's.
    public var hostname: String?
    /// CPU time, memory, processes, open files, file size, core dumps.
    public var limits: SandboxLimits
    /// The seccomp filter, or `nil` for none.
    public var systemCalls: SystemCallFilter?
    /// Whether Landlock restricts the file system (and TCP, and signals, where the kernel's ABI
    /// has them) as a second layer, with the same allow-lists.
    public var usesLandlock: Bool
    /// Who the child runs as when this process is root. Unprivileged, the child keeps this
    /// process's user, in a user namespace of its own.
    public var user: SandboxUser
    /// What happens when a restriction cannot be applied.
    public var enforcement: SandboxEnforcement

    /// A sandbox; every parameter defaults to the strictest setting (``strict``).
    public init(
        network: SandboxNetwork = .none,
        isolatesFileSystem: Bool = true,
        readablePaths: [String] = [],
        writablePaths: [String] = [],
        temporaryDirectorySize: Int? = 16 << 20,
        sharesNamedSharedMemory: Bool = false,
        isolatesProcesses: Bool = true,
        isolatesIPC: Bool = true,
        hostname: String? = "sandbox",
        limits: SandboxLimits = .small,
        systemCalls: SystemCallFilter? = .strict,
        usesLandlock: Bool = true,
        user: SandboxUser = .nobody,
        enforcement: SandboxEnforcement = .required
    ) {
        self.network = network
        self.isolatesFileSystem = isolatesFileSystem
        self.readablePaths = readablePaths
        self.writablePaths = writablePaths
        self.temporaryDirectorySize = temporaryDirectorySize
        self.sharesNamedSharedMemory = sharesNamedSharedMemory
        self.isolatesProcesses = isolatesProcesses
        self.isolatesIPC = isolatesIPC
        self.hostname = hostname
        self.limits = limits
        self.systemCalls = systemCalls
        self.usesLandlock = usesLandlock
        self.user = user
        self.enforcement = enforcement
    }

    /// The strictest preset, for a Swift task that parses untrusted input: no network, a
    /// read-only file system with nothing but the program itself, a private 16 MiB `/tmp`, its
    /// own PID, IPC and UTS namespaces, ``SandboxLimits/small``, the ``SystemCallFilter/strict``
    /// filter (no new sockets, no exec) and Landlock.
    public static var strict: Sandbox { Sandbox() }

    /// For running an external program or script (``run(_:arguments:environment:workingDirectory:input:timeLimit:outputLimit:startMethod:)``):
    /// ``strict``, but the system's programs and libraries (``systemPaths``) are readable, and
    /// the filter is ``SystemCallFilter/standard`` (a script runs commands; sockets reach nothing
    /// outside the sandbox). Set ``SystemCallFilter/allowsExec`` to `false` for a program that
    /// must not start another: it still starts itself.
    public static var program: Sandbox {
        var sandbox = Sandbox()
        sandbox.readablePaths = systemPaths
        sandbox.systemCalls = .standard
        return sandbox
    }

    /// Only the limits: no namespaces, no file-system view, no filter, no Landlock. Still no
    /// capabilities and no new privileges.
    public static func limitsOnly(_ limits: SandboxLimits) -> Sandbox {
        Sandbox(
            network: .host, isolatesFileSystem: false, temporaryDirectorySize: nil, isolatesProcesses: false,
            isolatesIPC: false, hostname: nil, limits: limits, systemCalls: nil, usesLandlock: false)
    }

    /// The directories and files a dynamically linked program of the system needs: `/usr`, the
    /// `/bin`, `/sbin` and `/lib*` entries (kept as the symbolic links they are on a merged-`/usr`
    /// system), and the loader's and name service's files in `/etc`. Missing ones are skipped.
    public static let systemPaths: [String] = [
        "/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32", "/etc/ld.so.cache",
        "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/alternatives", "/etc/localtime", "/etc/passwd",
        "/etc/group", "/etc/nsswitch.conf",
    ]

    /// Refuses what no child could be given, before anything is started.
    func validate(for startMethod: StartMethod) throws(ProcessError) {
        #if !os(Linux)
            throw .sandbox(.unavailable(.processes, reason: "confinement needs Linux"))
        #else
            if startMethod.kind == .fork { throw .sandbox(.unsupportedStartMethod(startMethod.description)) }
            for path in readablePaths + writablePaths {
                let parts = path.split(separator: "/", omittingEmptySubsequences: false)
                guard path.hasPrefix("/"), !parts.contains(".."), !parts.contains("."),
                    path == "/" || !path.hasSuffix("/"), !path.contains("//")
                else {
                    throw .sandbox(.invalidConfiguration("'\(path)' is not an absolute, normalized path"))
                }
            }
            if writablePaths.contains("/") {
                throw .sandbox(.invalidConfiguration("'/' cannot be writable: list the directories that are"))
            }
            for (name, value) in [
                ("memory", limits.memory), ("processes", limits.processes), ("openFiles", limits.openFiles),
                ("fileSize", limits.fileSize), ("temporaryDirectorySize", temporaryDirectorySize),
            ] {
                if let value, value < 1 {
                    throw .sandbox(.invalidConfiguration("\(name) must be at least 1"))
                }
            }
            if let cpu = limits.cpuTime, cpu <= .zero {
                throw .sandbox(.invalidConfiguration("cpuTime must be positive"))
            }
            if let hostname, hostname.utf8.count > 64 || hostname.isEmpty {
                throw .sandbox(.invalidConfiguration("the host name must have 1 to 64 bytes"))
            }
            if let systemCalls {
                for name in systemCalls.additionalDenials where SystemCallTable.number(of: name) == nil {
                    throw .sandbox(
                        .invalidConfiguration("no system call named '\(name)' on this architecture"))
                }
            }
        #endif
    }
}
