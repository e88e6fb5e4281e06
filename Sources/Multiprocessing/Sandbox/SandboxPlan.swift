/// What a sandboxed child learns with its launch request: the sandbox, the program to run in it
/// instead of a Swift task (if any), and what the parent worked out for it once — the files this
/// binary runs from, the cgroup hierarchies, the assembled seccomp filter — which every child
/// would otherwise work out again, at a cost on every start (the child is the same binary, in
/// the same cgroups, on the same machine).
struct SandboxPlan: Sendable {
    var sandbox: Sandbox
    var program: SandboxProgramPlan?
    var runningFiles: [String]
    var cgroupHierarchies: [SandboxCgroups.Hierarchy]
    /// The filter whose denials go to the init's listener, and the one that kills where the
    /// kernel has no listeners (``SeccompProgram/packed``); empty without a filter.
    var notifyingFilter: [UInt64]
    var killingFilter: [UInt64]
    /// What the init does about a view template (``SandboxViewTemplates``): set per start.
    var view: View = .none
    /// Whether a network namespace made ahead (``SandboxNetworkSupply``) is sent along, before
    /// the view template: set per start.
    var premadeNetwork = false
    /// Whether the child is the task of an init the fork server made in the sandbox's
    /// namespaces (``SandboxDirectStart``): it then confines itself, with no supervisor. Set per
    /// start.
    var direct = false
    /// Whether a direct start's task waits on its link for the cgroups the parent makes while
    /// it starts (``SandboxDirectStart/afterLaunch(_:)``), and joins them.
    var cgroupsFollow = false

    /// Whether the init builds its view from scratch, builds a template on the way, or enters
    /// the template sent with the launch (the descriptor before the link) and adds its own.
    enum View: Sendable {
        case none
        case build
        /// The template's part of what is visible inside.
        case enter([SandboxMounts.Visible])
    }

    /// The plan for `sandbox`, from this process's cached facts.
    ///
    /// - Throws: ``SandboxError/invalidConfiguration(_:)`` for a filter that cannot be built;
    ///   ``SandboxError/unavailable(_:reason:)`` where there is no filter for this architecture.
    static func make(_ sandbox: Sandbox, program: SandboxProgramPlan?) throws(SandboxError) -> SandboxPlan {
        let filters = try sandbox.systemCalls.map { filter throws(SandboxError) in
            try SandboxHostFacts.filters(for: filter)
        }
        return SandboxPlan(
            sandbox: sandbox, program: program, runningFiles: SandboxHostFacts.runningFiles,
            cgroupHierarchies: SandboxHostFacts.cgroupHierarchies, notifyingFilter: filters?.notifying ?? [],
            killingFilter: filters?.killing ?? [])
    }
}

/// An external program a sandboxed child runs (``Sandbox/run(_:arguments:environment:workingDirectory:input:timeLimit:outputLimit:startMethod:)``).
/// Its standard input, output and error are the first three descriptors of the launch frame.
struct SandboxProgramPlan: Sendable {
    var executable: String
    var arguments: [String]
    var environment: [String]
    var workingDirectory: String?
}
