import CMultiprocessing
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A sandboxed start without a supervisor: through the fork server, by a privileged process,
/// for a sandbox with a PID namespace of its own.
///
/// The fork server makes the sandbox's init itself, already in the sandbox's PID, IPC and UTS
/// namespaces (`clone`), and the init stays a small C process: it forks the task, then only
/// reaps, answers the system-call filter's notifications and writes the task's exit record to
/// the parent's link (``SandboxLink``). The task applies every restriction to itself before
/// anything of it runs (``SandboxInit/confine(_:handover:template:network:link:descriptors:)``).
/// This process makes the cgroups while the task starts (once the task is sent: the task reads
/// their description on the link before it confines itself), and from them and the exit
/// record works out the verdict and the exit status the supervisor would have: one copy of the
/// Swift runtime fewer on a start's path, and no supervisor to start, wait for and reap.
///
/// Everywhere else (spawn, `.fork`, an unprivileged process, no PID namespace) the
/// supervisor does that work (``SandboxSupervisor``).
struct SandboxDirectStart: Sendable {
    /// The init's namespaces, as `clone` flags.
    let namespaces: UInt32
    /// The task runs a program whose exec the filter denies after its own start.
    let execOnce: Bool
    /// The limits that take cgroups (memory, processes), if any.
    let memory: Int?
    let processes: Int?
    let cpuLimit: Duration?

    /// Whether the task waits for cgroups on its link.
    var hasCgroups: Bool { memory != nil || processes != nil }

    /// For the fork server's request: the flag that makes the child an init, and the exec rule.
    var initFlags: UInt32 { MP_FS_SANDBOX_INIT | (execOnce ? MP_FS_EXEC_ONCE : 0) }

    /// Numbers the cgroups this process makes: `<prefix><pid>-<number>`.
    private static let counter = Atomic<Int>(0)

    /// The direct start for `plan`; `nil` where a supervisor is needed.
    static func make(for plan: SandboxPlan, startMethod: StartMethod) -> SandboxDirectStart? {
        #if os(Linux)
            let sandbox = plan.sandbox
            guard startMethod.kind == .forkserver, sandbox.isolatesProcesses, SandboxCredentials.isPrivileged
            else { return nil }
            var namespaces = UInt32(SandboxCredentials.Namespace.pid)
            if sandbox.isolatesIPC { namespaces |= UInt32(SandboxCredentials.Namespace.ipc) }
            if sandbox.hostname != nil { namespaces |= UInt32(SandboxCredentials.Namespace.uts) }
            let limits = sandbox.limits
            return SandboxDirectStart(
                namespaces: namespaces,
                execOnce: plan.program != nil && !(sandbox.systemCalls?.allowsExec ?? true),
                memory: limits.memory, processes: limits.processes, cpuLimit: limits.cpuTime)
        #else
            return nil
        #endif
    }

    /// Once the task is sent, while the child starts: makes the cgroups, tells `link` (which
    /// removes them after the end) and the task (which joins them: none where they could not be
    /// made, and it then falls back to resource limits, as a supervisor's init does), then
    /// removes the cgroups of processes that were killed before they could, as a supervisor
    /// does.
    func afterLaunch(_ link: SandboxLink?) {
        guard hasCgroups, let link else { return }
        let number = Self.counter.wrappingAdd(1, ordering: .relaxed).newValue
        let hierarchies = SandboxHostFacts.cgroupHierarchies
        let cgroups = SandboxCgroups.make(
            memory: memory, processes: processes, in: hierarchies, name: "\(getpid())-\(number)")
        link.sendCgroups(cgroups)
        SandboxCgroups.removeStale(in: hierarchies)
    }

    /// Why the fork server could not make the init (`errno` of its `clone`): the namespaces
    /// could not be made, so nothing runs.
    func failure(_ error: ProcessError) -> ProcessError {
        guard case .launchFailed(let system) = error else { return error }
        return .sandbox(
            .unavailable(.processes, reason: "clone of the sandbox's init in its namespaces: \(system)"))
    }
}
