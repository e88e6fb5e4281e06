import Logging
import Synchronization

/// A `LogHandler` that sends a child's records to its parent, which logs them on the logger
/// it gave the child (``ChildProcess/logger``, ``PoolOptions/logger``) with the child's name
/// and pid as metadata (`process.name`, `process.pid`, and `logger.label` for the child
/// logger's label).
///
/// A child started with ``ChildProcess/forwardsLogs`` (or a pool with
/// ``PoolOptions/forwardsWorkerLogs``) gets this handler bootstrapped before its task runs:
/// every `Logger(label:)` in the task logs to the parent. In any other process (no parent
/// asked, the parent is gone, or the program is not a child) it writes to stderr like
/// swift-log's `StreamLogHandler`, so it is also safe to bootstrap by hand.
///
/// Each record is one datagram on a socket of its own (not the control channel): a child that
/// crashes mid-record loses at most that record and never garbles the parent's view of it;
/// records already sent are still read after the child dies. A child that logs faster than the
/// parent reads waits, as it would on a full stderr pipe. A record longer than 60 KiB is cut.
public struct ParentLogHandler: LogHandler {
    /// The logger's label (forwarded as `logger.label`).
    public let label: String
    /// Metadata added to every record of this logger.
    public var metadata: Logger.Metadata = [:]
    /// Contributes metadata (such as a trace id) at each record.
    public var metadataProvider: Logger.MetadataProvider?
    /// The least severe level logged: the parent logger's level when it asked for the records.
    public var logLevel: Logger.Level

    /// The record socket and the level the parent logs at; `nil` fd when nobody listens.
    private static let connection = Mutex<(fd: Int32, level: Logger.Level)>((-1, .info))

    /// Connects this process's handlers to its parent (the child runtime, at launch).
    static func connect(fd: Int32, level: Logger.Level) {
        connection.withLock { $0 = (fd, level) }
    }

    /// A handler for `label`, at the level the parent logs at.
    public init(label: String) {
        self.label = label
        self.logLevel = Self.connection.withLock { $0.level }
        self.metadataProvider = LoggingSystem.metadataProvider
    }

    /// One metadata value of this logger.
    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    /// Sends the record to the parent (or writes it to stderr when there is none).
    public func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { $1 } }
        if let extra = event.metadata { merged.merge(extra) { $1 } }
        let record = ForwardedLogRecord(
            label: label, level: event.level, message: event.message.description,
            metadata: merged.mapValues { $0.description }, source: event.source, file: event.file,
            function: event.function, line: event.line, pid: CurrentProcess.pid,
            processName: CurrentProcess.name)
        let fd = Self.connection.withLock { $0.fd }
        if fd >= 0, record.send(on: fd) { return }
        report(record.plainText)
    }
}
