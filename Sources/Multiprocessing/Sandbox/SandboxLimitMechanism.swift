/// How a memory or process limit is enforced (``SandboxReport``).
public enum SandboxLimitMechanism: String, Sendable, Hashable, Codable, CustomStringConvertible {
    /// A cgroup v2 controller (`memory.max`, `pids.max`): one budget for the whole sandbox.
    case cgroupV2
    /// A cgroup v1 controller (`memory.limit_in_bytes`, `pids.max`): one budget for the whole
    /// sandbox.
    case cgroupV1
    /// A resource limit of each process (`RLIMIT_AS` for memory, `RLIMIT_NPROC` for processes):
    /// the fallback where this process cannot create a cgroup.
    case resourceLimit

    /// `"cgroup v1"`, `"resource limit"`.
    public var description: String {
        switch self {
        case .cgroupV2: "cgroup v2"
        case .cgroupV1: "cgroup v1"
        case .resourceLimit: "resource limit (rlimit)"
        }
    }
}
