#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A POSIX signal, named the way people read them: `SIGKILL`, `SIGSEGV`.
public struct Signal: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    /// The signal number.
    public var rawValue: Int32

    /// Wraps a signal number.
    public init(rawValue: Int32) { self.rawValue = rawValue }

    /// Hang-up.
    public static let hangup = Signal(rawValue: SIGHUP)
    /// Interrupt (Ctrl-C).
    public static let interrupt = Signal(rawValue: SIGINT)
    /// Polite request to stop; what ``ChildProcess/terminate()`` sends.
    public static let terminate = Signal(rawValue: SIGTERM)
    /// Cannot be caught; what ``ChildProcess/kill()`` sends.
    public static let kill = Signal(rawValue: SIGKILL)
    /// Illegal instruction: how a Swift trap (`fatalError`, overflow, bounds check) ends a process on x86_64.
    public static let illegalInstruction = Signal(rawValue: SIGILL)
    /// Breakpoint trap: how a Swift trap ends a process on arm64.
    public static let trap = Signal(rawValue: SIGTRAP)
    /// Abort, as from `abort()`.
    public static let abort = Signal(rawValue: SIGABRT)
    /// Segmentation fault.
    public static let segmentationFault = Signal(rawValue: SIGSEGV)
    /// Bus error.
    public static let busError = Signal(rawValue: SIGBUS)
    /// User-defined signal 1.
    public static let user1 = Signal(rawValue: SIGUSR1)
    /// User-defined signal 2.
    public static let user2 = Signal(rawValue: SIGUSR2)

    /// The conventional name, such as `"SIGKILL"`, or `"signal 42"` for one without a name.
    public var name: String {
        switch rawValue {
        case SIGHUP: "SIGHUP"
        case SIGINT: "SIGINT"
        case SIGQUIT: "SIGQUIT"
        case SIGILL: "SIGILL"
        case SIGTRAP: "SIGTRAP"
        case SIGABRT: "SIGABRT"
        case SIGBUS: "SIGBUS"
        case SIGFPE: "SIGFPE"
        case SIGKILL: "SIGKILL"
        case SIGUSR1: "SIGUSR1"
        case SIGSEGV: "SIGSEGV"
        case SIGUSR2: "SIGUSR2"
        case SIGPIPE: "SIGPIPE"
        case SIGALRM: "SIGALRM"
        case SIGTERM: "SIGTERM"
        case SIGCHLD: "SIGCHLD"
        case SIGCONT: "SIGCONT"
        case SIGSTOP: "SIGSTOP"
        case SIGTSTP: "SIGTSTP"
        case SIGXCPU: "SIGXCPU"
        case SIGXFSZ: "SIGXFSZ"
        case SIGSYS: "SIGSYS"
        default: "signal \(rawValue)"
        }
    }

    /// The name and the system's description: `"SIGSEGV (Segmentation fault)"`.
    public var description: String {
        guard let text = strsignal(rawValue) else { return name }
        return "\(name) (\(String(cString: text)))"
    }
}
