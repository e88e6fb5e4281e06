import CoreMetrics

/// A queue's metrics in the process that made it (swift-metrics), made with the queue and only
/// when a metrics backend is bootstrapped. Names and dimensions: README, "Observability".
final class QueueMetrics: Sendable {
    static let prefix = "multiprocessing_queue_"

    /// Items in the queue as this process last saw them, after each of its puts and gets.
    let depth: Meter
    /// The queue's lock taken over from a process that died holding it.
    let lockRecoveries: Counter
    /// Items of consumers that died before marking them done, put back for others.
    let itemsRequeued: Counter
    /// Items of consumers that died before marking them done, counted done and reported.
    let itemsAbandoned: Counter

    /// `nil` when no backend is bootstrapped.
    static func make(queue: String) -> QueueMetrics? {
        if MetricsSystem.factory is NOOPMetricsHandler { return nil }
        return QueueMetrics(queue: queue)
    }

    private init(queue: String) {
        let dimensions = [("queue", queue)]
        depth = Meter(label: Self.prefix + "depth", dimensions: dimensions)
        lockRecoveries = Counter(label: Self.prefix + "lock_recoveries", dimensions: dimensions)
        itemsRequeued = Counter(label: Self.prefix + "items_requeued", dimensions: dimensions)
        itemsAbandoned = Counter(label: Self.prefix + "items_abandoned", dimensions: dimensions)
    }
}
