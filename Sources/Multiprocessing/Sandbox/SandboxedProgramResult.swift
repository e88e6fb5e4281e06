/// What an external program run in a sandbox did
/// (``Sandbox/run(_:arguments:environment:workingDirectory:input:timeLimit:outputLimit:startMethod:)``).
public struct SandboxedProgramResult: Sendable, Hashable {
    /// How the program ended: its exit code, or the signal that ended it (`127`: it could not
    /// be executed, most often because its path is not visible in the sandbox).
    public var status: ExitStatus
    /// Why the sandbox ended it, if it did: ``SandboxVerdict/timeLimit``,
    /// ``SandboxVerdict/cpuLimit``, ``SandboxVerdict/systemCallDenied(name:)``, ...
    public var verdict: SandboxVerdict?
    /// Everything it wrote to its standard output (up to the output limit).
    public var standardOutput: [UInt8]
    /// Everything it wrote to its standard error (up to the output limit).
    public var standardError: [UInt8]
    /// Whether either output went past the limit (the rest was read and dropped).
    public var outputTruncated: Bool
    /// What the sandbox applied.
    public var report: SandboxReport

    /// Creates a result.
    public init(
        status: ExitStatus, verdict: SandboxVerdict?, standardOutput: [UInt8], standardError: [UInt8],
        outputTruncated: Bool, report: SandboxReport
    ) {
        self.status = status
        self.verdict = verdict
        self.standardOutput = standardOutput
        self.standardError = standardError
        self.outputTruncated = outputTruncated
        self.report = report
    }

    /// The standard output as text (invalid UTF-8 repaired).
    public var output: String { String(decoding: standardOutput, as: UTF8.self) }

    /// The standard error as text (invalid UTF-8 repaired).
    public var errorOutput: String { String(decoding: standardError, as: UTF8.self) }

    /// It exited with code 0 and the sandbox did not stop it.
    public var isSuccess: Bool { status == .exited(0) && verdict == nil }
}
