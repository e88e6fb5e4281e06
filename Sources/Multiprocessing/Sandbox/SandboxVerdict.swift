/// Why the sandbox ended a child: what it ran into, instead of a bare signal.
///
/// Found in ``ChildCrash/verdict``, ``WorkerLoss/sandboxVerdict``,
/// ``ChildProcess/sandboxVerdict`` and ``SandboxedProgramResult/verdict``.
public enum SandboxVerdict: Sendable, Hashable, Codable, CustomStringConvertible {
    /// It used up its CPU time (``SandboxLimits/cpuTime``).
    case cpuLimit
    /// It ran out of memory (``SandboxLimits/memory``): killed by the cgroup's OOM killer, or
    /// an allocation failed under the address-space limit.
    case memoryLimit
    /// It died after being refused a process or thread (``SandboxLimits/processes``).
    case processLimit
    /// It wrote past ``SandboxLimits/fileSize``.
    case fileSizeLimit
    /// It made a system call the filter denies; `name` is the call (`"execve"`, `"ptrace"`).
    case systemCallDenied(name: String)
    /// It ran past the time limit of ``Sandbox/run(_:arguments:environment:workingDirectory:input:timeLimit:outputLimit:startMethod:)``
    /// and was killed.
    case timeLimit

    /// `"exceeded its CPU-time limit"`, `"made a denied system call (execve)"`.
    public var description: String {
        switch self {
        case .cpuLimit: "exceeded its CPU-time limit"
        case .memoryLimit: "exceeded its memory limit"
        case .processLimit: "hit its process limit"
        case .fileSizeLimit: "exceeded its file-size limit"
        case .systemCallDenied(let name): "made a denied system call (\(name))"
        case .timeLimit: "ran past its time limit"
        }
    }
}
