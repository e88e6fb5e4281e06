/// Why a sandboxed child could not start. Nothing of its task ran.
public enum SandboxError: Error, Sendable, Hashable, Codable, CustomStringConvertible {
    /// A restriction asked for cannot be applied on this kernel or with these privileges.
    case unavailable(SandboxRestriction, reason: String)
    /// The sandbox asks for something impossible (a relative path, a limit below 1, a system
    /// call this architecture does not have).
    case invalidConfiguration(String)
    /// The start method cannot confine a child (``StartMethod/fork``: see ``Sandbox``).
    case unsupportedStartMethod(String)
    /// Setting the sandbox up failed for another reason (its init died, no process could be
    /// made for it).
    case setupFailed(String)

    /// The restriction that could not be applied, if that is what went wrong.
    public var restriction: SandboxRestriction? {
        if case .unavailable(let restriction, _) = self { return restriction }
        return nil
    }

    /// `"the sandbox cannot apply the network namespace: unshare: Operation not permitted (errno 1)"`.
    public var description: String {
        switch self {
        case .unavailable(let restriction, let reason):
            "the sandbox cannot apply \(restriction): \(reason); nothing ran"
        case .invalidConfiguration(let why): "invalid sandbox: \(why)"
        case .unsupportedStartMethod(let method):
            "a sandboxed child cannot be started with '\(method)': use spawn or forkserver"
        case .setupFailed(let why): "the sandbox could not be set up: \(why); nothing ran"
        }
    }
}
