/// The resources a sandboxed child may use. `nil` leaves a resource as this process has it.
///
/// Hitting a limit ends the child with a ``SandboxVerdict``: ``SandboxVerdict/cpuLimit`` (the
/// kernel sends `SIGXCPU` at the limit and `SIGKILL` a second later), ``SandboxVerdict/memoryLimit``
/// (the cgroup's OOM kill, or an allocation refused under the address-space limit),
/// ``SandboxVerdict/processLimit`` (a child that died after `fork` or thread creation was
/// refused), ``SandboxVerdict/fileSizeLimit`` (`SIGXFSZ`). Running out of ``openFiles`` is an
/// ordinary `EMFILE` the task sees.
public struct SandboxLimits: Sendable, Hashable, Codable {
    /// CPU time (user + system) of the task process, rounded up to whole seconds
    /// (`RLIMIT_CPU`). Each process it starts has a budget of its own.
    public var cpuTime: Duration?
    /// Memory, in bytes, for the child and everything it starts: a memory cgroup (v2 or v1)
    /// where this process may create one, else an address-space limit (`RLIMIT_AS`) on each
    /// process, set to this much more than the process had mapped when the sandbox was
    /// applied, plus 256 MiB for thread stacks and allocator arenas. ``SandboxReport`` says which.
    public var memory: Int?
    /// Processes and threads the child may have at once, itself included: a pids cgroup where
    /// this process may create one, else `RLIMIT_NPROC` (counted per user: per sandbox in a
    /// user namespace of its own, but shared by every process of ``SandboxUser`` when started
    /// by root).
    public var processes: Int?
    /// Open descriptors per process (`RLIMIT_NOFILE`).
    public var openFiles: Int?
    /// The largest file a process may write, in bytes (`RLIMIT_FSIZE`).
    public var fileSize: Int?
    /// Whether a crash may write a core file. Default `false` (`RLIMIT_CORE` 0).
    public var allowsCoreDumps: Bool

    /// Limits; each `nil` one is left as it is.
    public init(
        cpuTime: Duration? = nil, memory: Int? = nil, processes: Int? = nil, openFiles: Int? = nil,
        fileSize: Int? = nil, allowsCoreDumps: Bool = false
    ) {
        self.cpuTime = cpuTime
        self.memory = memory
        self.processes = processes
        self.openFiles = openFiles
        self.fileSize = fileSize
        self.allowsCoreDumps = allowsCoreDumps
    }

    /// Small limits for untrusted input: 30 s of CPU, 512 MiB of memory, 64 processes and
    /// threads, 256 open files, files of at most 64 MiB, no core dumps.
    public static var small: SandboxLimits {
        SandboxLimits(
            cpuTime: .seconds(30), memory: 512 << 20, processes: 64, openFiles: 256, fileSize: 64 << 20)
    }

    /// No limit but the core dumps.
    public static var none: SandboxLimits { SandboxLimits() }
}
