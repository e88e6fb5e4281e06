/// An error thrown by user code in another process whose type could not be re-created here
/// (it is not `Codable`, or not visible by name): its type name and description survive.
public struct RemoteError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The error's type, as `String(reflecting:)` printed it in the child.
    public var typeName: String
    /// The error's description in the child (`String(describing:)`).
    public var errorDescription: String
    /// The process the error was thrown in.
    public var processName: String
    /// Its pid.
    public var pid: Int32

    /// Creates a remote error record.
    public init(typeName: String, errorDescription: String, processName: String, pid: Int32) {
        self.typeName = typeName
        self.errorDescription = errorDescription
        self.processName = processName
        self.pid = pid
    }

    /// `"TaskError.invalidInput("x") thrown in 'worker-1' (pid 1234)"`.
    public var description: String {
        "\(typeName): \(errorDescription) (thrown in '\(processName)', pid \(pid))"
    }
}
