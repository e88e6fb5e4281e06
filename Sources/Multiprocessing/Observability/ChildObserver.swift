import Logging
import Synchronization
import Tracing

/// The parent's view of one child for logging and tracing: logs its start and end (a crash at
/// `error` with its report), ends the library's span for its task, and reads the records it
/// forwards. Made only when there is something to do: a logger, or an active tracer.
final class ChildObserver: Sendable {
    let logger: Logger?
    let trace: TaskTrace?
    /// Whether the start and end are logged here (not for a pool worker: the pool logs them).
    let logsLifecycle: Bool
    private let reader = Mutex<ForwardedLogReader?>(nil)

    init(logger: Logger?, trace: TaskTrace?, logsLifecycle: Bool = true) {
        self.logger = logger
        self.trace = trace
        self.logsLifecycle = logsLifecycle
    }

    /// Takes the parent's end of the record socket; `false` when it cannot be watched (then it
    /// is closed, and the child's records go to its stderr instead).
    func readRecords(fd: Int32, reactor: IOReactor) throws(SystemError) {
        guard let logger else {
            Syscall.close(fd)
            return
        }
        let reader = try ForwardedLogReader(fd: fd, logger: logger, reactor: reactor)
        self.reader.withLock { $0 = reader }
    }

    /// The child exists.
    func started(name: String, pid: Int32) {
        trace?.span.attributes["process.pid"] = Int(pid)
        trace?.span.addEvent("running")
        guard logsLifecycle else { return }
        logger?.debug(
            "child process started",
            metadata: ["process.name": .string(name), "process.pid": .stringConvertible(pid)])
    }

    /// The child was never started (its start failed).
    func cancelled(_ error: any Error) {
        reader.withLock { $0 }?.cancel()
        trace?.end(error: error)
    }

    /// The child has ended: logs how (after the records it sent), ends the span.
    func exited(name: String, pid: Int32, status: ExitStatus, crashReport: () -> CrashReport?) {
        reader.withLock { $0 }?.drain()
        reader.withLock { $0 }?.cancel()
        if logsLifecycle, let logger {
            let metadata: Logger.Metadata = [
                "process.name": .string(name), "process.pid": .stringConvertible(pid),
                "exit.status": .string("\(status)"),
            ]
            switch status {
            case .exited(0):
                logger.debug("child process exited", metadata: metadata)
            case .exited:
                logger.notice("child process exited with a failure", metadata: metadata)
            case .signaled:
                if logger.logLevel <= .error, let report = crashReport() {
                    var withReport = metadata
                    withReport["crash.report"] = .string("\(report)")
                    logger.error("child process crashed", metadata: withReport)
                } else {
                    logger.warning("child process killed by a signal", metadata: metadata)
                }
            }
        }
        if let trace {
            switch status {
            case .exited(0): trace.end { $0["process.exit_code"] = 0 }
            default: trace.end(error: ChildEnded(status: status)) { $0["process.exit_status"] = "\(status)" }
            }
        }
    }
}

/// How a traced child's span ends when the child did not exit with 0.
struct ChildEnded: Error, CustomStringConvertible {
    let status: ExitStatus
    var description: String { "the child process ended: \(status)" }
}
