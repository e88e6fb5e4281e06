/// Whether a sandboxed child reaches the network.
public enum SandboxNetwork: Sendable, Hashable, Codable {
    /// A network namespace of its own with nothing but its loopback interface (up): it can
    /// talk to itself on 127.0.0.1 and reach nothing else.
    case none
    /// This machine's network.
    case host
}
