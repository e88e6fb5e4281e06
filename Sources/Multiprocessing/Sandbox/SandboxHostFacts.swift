import Synchronization

/// What every sandbox of this process shares, worked out once: the files this binary runs from
/// (its children are copies of it), the cgroup hierarchies it is in, and each filter assembled.
enum SandboxHostFacts {
    /// The binary and the libraries mapped when first asked.
    static let runningFiles: [String] = SandboxMounts.runningFiles()

    /// This process's cgroups (its children start in the same).
    static let cgroupHierarchies: [SandboxCgroups.Hierarchy] = SandboxCgroups.Hierarchy.ofThisProcess()

    private static let assembled = Mutex<[SystemCallFilter: (notifying: [UInt64], killing: [UInt64])]>([:])

    /// `filter` assembled: the notifying and the killing program, packed.
    static func filters(for filter: SystemCallFilter) throws(SandboxError) -> (
        notifying: [UInt64], killing: [UInt64]
    ) {
        if let known = assembled.withLock({ $0[filter] }) { return known }
        let programs = (
            notifying: try SeccompProgram(filter: filter, notifies: true).packed,
            killing: try SeccompProgram(filter: filter, notifies: false).packed
        )
        assembled.withLock { $0[filter] = programs }
        return programs
    }
}
