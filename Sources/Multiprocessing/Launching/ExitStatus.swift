/// How a process ended.
public enum ExitStatus: Sendable, Hashable, CustomStringConvertible {
    /// It called `exit` (or returned from `main`) with this code.
    case exited(Int32)
    /// A signal killed it.
    case signaled(Signal)

    /// Decodes a raw `wait` status.
    init(waitStatus status: Int32) {
        if status & 0x7f == 0 {
            self = .exited((status >> 8) & 0xff)
        } else {
            self = .signaled(Signal(rawValue: status & 0x7f))
        }
    }

    /// `true` for `.exited(0)`.
    public var isSuccess: Bool { self == .exited(0) }

    /// CPython's `exitcode`: the exit code, or minus the signal number.
    public var code: Int32 {
        switch self {
        case .exited(let code): code
        case .signaled(let signal): -signal.rawValue
        }
    }

    /// `"exited with code 1"` or `"killed by SIGKILL (Killed)"`.
    public var description: String {
        switch self {
        case .exited(let code): "exited with code \(code)"
        case .signaled(let signal): "killed by \(signal)"
        }
    }
}
