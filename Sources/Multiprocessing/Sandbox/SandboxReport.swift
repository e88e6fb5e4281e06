/// What a sandbox applied to a child (``ChildProcess/sandboxReport``): everything asked for,
/// unless ``SandboxEnforcement/bestEffort`` let some restriction go.
public struct SandboxReport: Sendable, Hashable, Codable, CustomStringConvertible {
    /// The restrictions in force, in the order they were applied.
    public var applied: [SandboxRestriction]
    /// The restrictions asked for but not applied (best effort only), with the reason.
    public var notApplied: [SandboxRestriction: String]
    /// How the memory limit is enforced, if there is one.
    public var memoryLimitMechanism: SandboxLimitMechanism?
    /// How the process limit is enforced, if there is one.
    public var processLimitMechanism: SandboxLimitMechanism?
    /// The Landlock ABI used, if Landlock was applied.
    public var landlockABI: Int?
    /// The user id the child runs as, as this machine sees it.
    public var userID: UInt32
    /// The group id the child runs as, as this machine sees it.
    public var groupID: UInt32
    /// The cgroup directories made for the child (removed when it ends).
    var cgroupDirectories: [String] = []

    /// An empty report.
    public init(userID: UInt32 = 0, groupID: UInt32 = 0) {
        applied = []
        notApplied = [:]
        self.userID = userID
        self.groupID = groupID
    }

    /// Whether `restriction` is in force.
    public func isApplied(_ restriction: SandboxRestriction) -> Bool { applied.contains(restriction) }

    /// One line per restriction.
    public var description: String {
        var lines = applied.map { "applied: \($0)" }
        for (restriction, reason) in notApplied.sorted(by: { $0.key.rawValue < $1.key.rawValue }) {
            lines.append("not applied: \(restriction) (\(reason))")
        }
        if let memoryLimitMechanism { lines.append("memory limit: \(memoryLimitMechanism)") }
        if let processLimitMechanism { lines.append("process limit: \(processLimitMechanism)") }
        if let landlockABI { lines.append("Landlock ABI \(landlockABI)") }
        lines.append("runs as uid \(userID), gid \(groupID)")
        return lines.joined(separator: "\n")
    }
}
