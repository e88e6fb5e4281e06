import CoreMetrics
import Synchronization

/// The Manager's metrics, made on the first compaction after a metrics backend is bootstrapped
/// (a compaction is rare: looking the backend up each time costs nothing that shows).
enum ManagerMetrics {
    private static let counter = Mutex<Counter?>(nil)

    /// `multiprocessing_manager_log_compactions`: operation-log compactions this process wrote
    /// (rewrites of a shared container's log when its region filled up).
    static var compactions: Counter? {
        counter.withLock { counter in
            if let counter { return counter }
            guard !(MetricsSystem.factory is NOOPMetricsHandler) else { return nil }
            counter = Counter(label: "multiprocessing_manager_log_compactions")
            return counter
        }
    }
}
