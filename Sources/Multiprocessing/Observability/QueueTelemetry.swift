import Logging
import Synchronization

/// What a queue tells a service team, in the process that made it: its events on its logger
/// and its metrics (``QueueMetrics``). A queue with neither has none (`nil`), and its puts and
/// gets pay one `nil` check.
final class QueueTelemetry: Sendable {
    /// The queue's `queue` metadata value and metrics dimension.
    let label: String
    let logger: Logger?
    let metrics: QueueMetrics?

    private static let numbering = Atomic<Int>(0)

    /// `nil` when there is nothing to tell: no logger and no metrics backend.
    static func make(label: String?, logger: Logger?) -> QueueTelemetry? {
        let label = label ?? "queue-\(numbering.add(1, ordering: .relaxed).newValue)"
        let metrics = QueueMetrics.make(queue: label)
        if logger == nil && metrics == nil { return nil }
        return QueueTelemetry(label: label, logger: logger, metrics: metrics)
    }

    private init(label: String, logger: Logger?, metrics: QueueMetrics?) {
        self.label = label
        self.logger = logger.map { logger in
            var logger = logger
            logger[metadataKey: "queue"] = .string(label)
            return logger
        }
        self.metrics = metrics
    }

    /// The queue holds `depth` items (after a put or get of this process).
    @inline(__always) func depth(_ depth: @autoclosure () -> Int) {
        metrics?.depth.set(depth())
    }
}

extension Optional where Wrapped == QueueTelemetry {
    /// The queue's lock was taken over from process `holder`.
    func lockRecovered(holder: Int32) {
        self?.metrics?.lockRecoveries.increment()
        LibraryLogger.ownerDied("queue lock", holder: holder, logger: self?.logger)
    }

    /// Items of consumer `pid`, which died, were put back or counted done.
    func deadConsumer(pid: Int32, requeued: Int, abandoned: Int) {
        guard requeued > 0 || abandoned > 0 else { return }
        if let metrics = self?.metrics {
            if requeued > 0 { metrics.itemsRequeued.increment(by: requeued) }
            if abandoned > 0 { metrics.itemsAbandoned.increment(by: abandoned) }
        }
        guard let logger = self?.logger ?? CurrentProcess.logger else { return }
        logger.warning(
            "queue consumer died holding items",
            metadata: [
                "holder.pid": .stringConvertible(pid), "items.requeued": .stringConvertible(requeued),
                "items.abandoned": .stringConvertible(abandoned),
            ])
    }

    /// A large item was dropped: its descriptor never arrived (its producer died sending it).
    func largeItemLost() {
        guard let logger = self?.logger ?? CurrentProcess.logger else { return }
        logger.warning("queue item lost: its producer died before its memory was sent")
    }
}
