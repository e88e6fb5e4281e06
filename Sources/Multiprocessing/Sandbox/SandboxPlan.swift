/// What a sandboxed child learns with its launch request: the sandbox, and the program to run
/// in it instead of a Swift task, if any.
struct SandboxPlan: Codable, Sendable {
    var sandbox: Sandbox
    var program: SandboxProgramPlan?
}

/// An external program a sandboxed child runs (``Sandbox/run(_:arguments:environment:workingDirectory:input:timeLimit:outputLimit:startMethod:)``).
/// Its standard input, output and error are the first three descriptors of the launch frame.
struct SandboxProgramPlan: Codable, Sendable {
    var executable: String
    var arguments: [String]
    var environment: [String]
    var workingDirectory: String?
}
