import Logging
import Synchronization

/// Where the library logs events of shared objects that have no logger of their own.
enum LibraryLogger {
    static let current = Mutex<Logger?>(nil)

    /// A lock (or a shared container's lock) was taken over from a process that died holding it.
    /// Rare, so the logger is looked up each time.
    static func ownerDied(_ what: String, holder: Int32, logger: Logger? = nil) {
        guard let logger = logger ?? current.withLock({ $0 }) else { return }
        logger.warning(
            "\(what) taken over from a process that died holding it",
            metadata: [
                "holder.pid": .stringConvertible(holder),
                "process.pid": .stringConvertible(CurrentProcess.pid),
            ])
    }
}

extension CurrentProcess {
    /// The logger for events of this process's shared objects that have no logger of their own:
    /// a ``ProcessLock`` or ``ProcessRLock`` taken over from a holder that died (`warning`,
    /// with `holder.pid`), a Manager container's log taken over the same way (`warning`) or
    /// compacted (`debug`), and a queue's events when the queue was made without a logger (or
    /// came from another process). `nil` (the default): they are not logged.
    ///
    /// Each process has its own: set it in a ``ChildSetup`` for children.
    public static var logger: Logger? {
        get { LibraryLogger.current.withLock { $0 } }
        set { LibraryLogger.current.withLock { $0 = newValue } }
    }
}
