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
/// This process, which knows the cgroups (it made them, before the start) and the exit
/// record, works out the verdict and the exit status the supervisor would have: one copy of the
/// Swift runtime fewer on a start's path, and no supervisor to start, wait for and reap.
///
/// Everywhere else (spawn, `.fork`, an unprivileged process, no PID namespace) the
/// supervisor does that work (``SandboxSupervisor``).
struct SandboxDirectStart: Sendable {
    /// The init's namespaces, as `clone` flags.
    let namespaces: UInt32
    /// The task runs a program whose exec the filter denies after its own start.
    let execOnce: Bool
    /// The cgroups made for this start (none where the limits need none or none could be made:
    /// the task then falls back to resource limits, as a supervisor's init does).
    let cgroups: SandboxCgroups
    let cpuLimit: Duration?

    /// For the fork server's request: the flag that makes the child an init, and the exec rule.
    var initFlags: UInt32 { 1 | (execOnce ? 2 : 0) }

    /// Numbers the cgroups this process makes: `<prefix><pid>-<number>`.
    private static let counter = Atomic<Int>(0)

    /// The direct start for `plan`, with its cgroups made; `nil` where a supervisor is needed.
    static func make(for plan: SandboxPlan, startMethod: StartMethod) -> SandboxDirectStart? {
        #if os(Linux)
            let sandbox = plan.sandbox
            guard startMethod.kind == .forkserver, sandbox.isolatesProcesses, SandboxCredentials.isPrivileged
            else { return nil }
            var namespaces = UInt32(SandboxCredentials.Namespace.pid)
            if sandbox.isolatesIPC { namespaces |= UInt32(SandboxCredentials.Namespace.ipc) }
            if sandbox.hostname != nil { namespaces |= UInt32(SandboxCredentials.Namespace.uts) }
            var cgroups = SandboxCgroups()
            let limits = sandbox.limits
            if limits.memory != nil || limits.processes != nil {
                let number = counter.wrappingAdd(1, ordering: .relaxed).newValue
                cgroups = SandboxCgroups.make(
                    memory: limits.memory, processes: limits.processes, in: plan.cgroupHierarchies,
                    name: "\(getpid())-\(number)")
            }
            return SandboxDirectStart(
                namespaces: namespaces,
                execOnce: plan.program != nil && !(sandbox.systemCalls?.allowsExec ?? true),
                cgroups: cgroups, cpuLimit: limits.cpuTime)
        #else
            return nil
        #endif
    }

    /// Once the child is asked for, while it starts: removes the cgroups of processes that were
    /// killed before they could (beside this start's own), as a supervisor does.
    func afterLaunch() {
        if !cgroups.directories.isEmpty { SandboxCgroups.removeStale(in: SandboxHostFacts.cgroupHierarchies) }
    }

    /// Why the fork server could not make the init (`errno` of its `clone`): the namespaces
    /// could not be made, so nothing runs.
    func failure(_ error: ProcessError) -> ProcessError {
        guard case .launchFailed(let system) = error else { return error }
        return .sandbox(
            .unavailable(.processes, reason: "clone of the sandbox's init in its namespaces: \(system)"))
    }
}
