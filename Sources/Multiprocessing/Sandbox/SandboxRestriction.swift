/// One restriction of a ``Sandbox``: what a ``SandboxError`` names when it cannot be applied,
/// and what a ``SandboxReport`` lists.
public enum SandboxRestriction: String, Sendable, Hashable, Codable, CaseIterable, CustomStringConvertible {
    /// `no_new_privs`: no setuid bit or file capability grants anything.
    case noNewPrivileges
    /// Every capability dropped (bounding, ambient, inheritable, permitted, effective sets),
    /// locked by the secure bits.
    case capabilities
    /// Another user and group (``Sandbox/user``), when started by root.
    case user
    /// A user namespace of its own, when not started by root.
    case userNamespace
    /// The mount namespace: the file-system view made of the allow-lists, read-only elsewhere.
    case fileSystem
    /// The private `/tmp`.
    case temporaryDirectory
    /// The network namespace with nothing but its own loopback.
    case network
    /// The PID namespace.
    case processes
    /// The System V IPC namespace.
    case ipc
    /// The UTS namespace and its host name.
    case hostname
    /// The CPU-time limit.
    case cpuLimit
    /// The memory limit (cgroup or address space).
    case memoryLimit
    /// The process and thread limit (cgroup or `RLIMIT_NPROC`).
    case processLimit
    /// The open-file limit.
    case openFileLimit
    /// The file-size limit.
    case fileSizeLimit
    /// No core dumps.
    case coreDumps
    /// Landlock's file-system (and TCP, signal) restrictions.
    case landlock
    /// The seccomp filter.
    case systemCallFilter

    /// A few words: `"the network namespace"`.
    public var description: String {
        switch self {
        case .noNewPrivileges: "no_new_privs"
        case .capabilities: "dropping every capability"
        case .user: "running as another user"
        case .userNamespace: "the user namespace"
        case .fileSystem: "the file-system view (mount namespace)"
        case .temporaryDirectory: "the private /tmp"
        case .network: "the network namespace"
        case .processes: "the PID namespace"
        case .ipc: "the IPC namespace"
        case .hostname: "the UTS namespace"
        case .cpuLimit: "the CPU-time limit"
        case .memoryLimit: "the memory limit"
        case .processLimit: "the process limit"
        case .openFileLimit: "the open-file limit"
        case .fileSizeLimit: "the file-size limit"
        case .coreDumps: "disabling core dumps"
        case .landlock: "Landlock"
        case .systemCallFilter: "the system-call filter (seccomp)"
        }
    }
}
