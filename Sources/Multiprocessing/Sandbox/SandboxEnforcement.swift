/// What happens when a restriction of a ``Sandbox`` cannot be applied.
public enum SandboxEnforcement: Sendable, Hashable, Codable {
    /// The start fails with ``SandboxError/unavailable(_:reason:)`` naming it; nothing runs.
    case required
    /// The child runs with what could be applied; ``ChildProcess/sandboxReport`` lists what was
    /// and what was not, and why.
    case bestEffort
}
