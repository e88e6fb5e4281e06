/// Why a child process could not run its task or did not return a result.
public enum ProcessError: Error, Sendable, CustomStringConvertible {
    /// The task type cannot be found by name in a child; nothing was spawned.
    case unsupportedTaskType(typeName: String, reason: String)
    /// The task's `Output` is neither `Void` nor `Codable`; nothing was spawned.
    case unsupportedOutputType(typeName: String)
    /// The call does not fit the process's state (started twice, joined before start, ...).
    case invalidState(String)
    /// The task or its result could not be encoded or decoded.
    case codec(CodecError)
    /// Starting the process failed: this system call failed (in this process, or in the fork
    /// server for ``StartMethod/forkserver``).
    case launchFailed(SystemError)
    /// The fork server (``StartMethod/forkserver``) exited, or answered with something that is
    /// not its protocol, before it reported the child: the child was not started (or was
    /// killed with the server). The next start starts a new server.
    case forkServerExited
    /// A ``StartMethod/forkserver`` start whose environment and working directory take `bytes`
    /// bytes, more than one request to the fork server carries (`limit`); nothing was started.
    /// Pass fewer or shorter variables, or start the child with ``StartMethod/spawn``.
    case forkServerRequestTooLarge(bytes: Int, limit: Int)
    /// The child was started but its task could not be written to its control channel; the
    /// child was killed. (A failed system call is ``launchFailed(_:)``; a child that died
    /// before reading its task is reported by `join`/`value`.)
    case taskNotSent(ChannelError)
    /// The child died (signal, or exit without a result) before returning a result.
    case crashed(ChildCrash)
    /// The child wrote something on its control channel that is not this library's protocol
    /// (bytes that are not frames, a frame of the wrong kind, an outcome that does not decode).
    /// Nothing it sent is trusted, even a result; it was killed the moment this was seen.
    case protocolViolation(ProtocolViolation)
    /// The awaiting task was cancelled; the child was stopped.
    case cancelled
    /// The child's ``Sandbox`` could not be applied (or asked for something impossible): it
    /// ran nothing.
    case sandbox(SandboxError)

    /// A sentence that says what went wrong and what to do.
    public var description: String {
        switch self {
        case .unsupportedTaskType(let name, let reason): "cannot run \(name) in a child process: \(reason)"
        case .unsupportedOutputType(let name):
            "the output type \(name) is neither Void nor Codable, so it cannot come back from a child process"
        case .invalidState(let why): why
        case .codec(let error): "encoding or decoding failed: \(error)"
        case .launchFailed(let error): "could not start the child process: \(error)"
        case .forkServerExited:
            "could not start the child process: the fork server exited before it reported the child; the next start starts a new one"
        case .forkServerRequestTooLarge(let bytes, let limit):
            "could not start the child process: its environment and working directory take \(bytes) bytes, more than the fork server takes (\(limit)); pass fewer variables or use .spawn"
        case .taskNotSent(let error): "could not send the task to the child process (it was killed): \(error)"
        case .crashed(let crash): crash.description
        case .protocolViolation(let violation): violation.description
        case .cancelled: "cancelled; the child process was stopped"
        case .sandbox(let error): error.description
        }
    }
}

/// What is known about a child that died without returning a result.
public struct ChildCrash: Sendable, Hashable, CustomStringConvertible {
    /// The child's name.
    public var processName: String
    /// Its pid.
    public var pid: Int32
    /// How it ended.
    public var status: ExitStatus
    /// The last lines it wrote to stderr (a Swift trap prints its message there in debug
    /// builds; an optimised trap prints nothing). Empty when stderr was not captured.
    public var standardErrorTail: [String]
    /// Where it crashed, from its crash handler: `nil` when it was killed from outside
    /// (`SIGKILL` cannot be caught), exited, or died before it could report.
    public var report: CrashReport?
    /// Why its ``Sandbox`` ended it (``SandboxVerdict/cpuLimit``,
    /// ``SandboxVerdict/systemCallDenied(name:)``, ...), if it did.
    public var verdict: SandboxVerdict?

    /// Creates a crash record.
    public init(
        processName: String, pid: Int32, status: ExitStatus, standardErrorTail: [String],
        report: CrashReport? = nil, verdict: SandboxVerdict? = nil
    ) {
        self.processName = processName
        self.pid = pid
        self.status = status
        self.standardErrorTail = standardErrorTail
        self.report = report
        self.verdict = verdict
    }

    /// The function the crash is blamed on, demangled, if the child reported one.
    public var crashingFunction: String? { report?.crashingFunction }

    /// The crashing thread's frames, innermost first (empty without a report).
    public var backtrace: [CrashFrame] { report?.frames ?? [] }

    /// The signal that killed it, if one did.
    public var signal: Signal? {
        if case .signaled(let signal) = status { return signal }
        return nil
    }

    /// `"child 'parser' (pid 42) killed by SIGILL (Illegal instruction) in Parser.run() before
    /// returning a result"`, then the last stderr lines and the backtrace.
    public var description: String {
        var text = "child '\(processName)' (pid \(pid)) "
        if let verdict { text += "\(verdict) and was stopped by its sandbox: " }
        text += "\(status)"
        if let function = crashingFunction { text += " in \(function)" }
        text += " before returning a result"
        if !standardErrorTail.isEmpty {
            text += "; last stderr lines:\n  " + standardErrorTail.joined(separator: "\n  ")
        }
        if let report { text += "\nbacktrace of the crashing thread:" + report.frameLines }
        return text
    }
}

/// What is known about a child that broke the control protocol.
public struct ProtocolViolation: Sendable, Hashable, CustomStringConvertible {
    /// The child's name.
    public var processName: String
    /// Its pid.
    public var pid: Int32
    /// What was wrong, such as `"corrupt frame: bad magic byte 0x67"`.
    public var reason: String
    /// How it ended: usually killed by `SIGKILL`, for breaking the protocol; an exit if it
    /// ended before that could happen.
    public var status: ExitStatus
    /// The last lines it wrote to stderr. Empty when stderr was not captured.
    public var standardErrorTail: [String]

    /// Creates a violation record.
    public init(
        processName: String, pid: Int32, reason: String, status: ExitStatus, standardErrorTail: [String]
    ) {
        self.processName = processName
        self.pid = pid
        self.reason = reason
        self.status = status
        self.standardErrorTail = standardErrorTail
    }

    /// `"child 'parser' (pid 42) broke the control protocol (corrupt frame: ...) and was stopped: killed by SIGKILL (Killed)"`.
    public var description: String {
        var text = "child '\(processName)' (pid \(pid)) broke the control protocol (\(reason))"
        text += status == .signaled(.kill) ? " and was stopped: \(status)" : "; it \(status)"
        if !standardErrorTail.isEmpty {
            text += "; last stderr lines:\n  " + standardErrorTail.joined(separator: "\n  ")
        }
        return text
    }
}
