import CoreMetrics
import Synchronization

/// A pool's metrics (swift-metrics), made once when the pool is created, and only when a
/// metrics backend is bootstrapped: with the default no-op backend the pool holds none and
/// reads no clock. Names and dimensions: README, "Observability".
final class PoolMetrics: Sendable {
    static let prefix = "multiprocessing_pool_"

    /// Why a task failed, as the `reason` dimension says it.
    enum FailureReason: String, CaseIterable, Sendable {
        case error
        case workerLost = "worker_lost"
        case timeout
        case memoryLimit = "memory_limit"
        case cancelled
        case protocolError = "protocol_error"
        case startFailed = "start_failed"
        case initializerFailed = "initializer_failed"
        case other

        init(_ error: any Error) {
            switch error {
            case PoolError.workerLost: self = .workerLost
            case PoolError.timedOut: self = .timeout
            case PoolError.memoryLimitExceeded: self = .memoryLimit
            case PoolError.cancelled: self = .cancelled
            case PoolError.protocolError: self = .protocolError
            case PoolError.workerStartFailed: self = .startFailed
            case PoolError.initializerFailed: self = .initializerFailed
            case is ProcessError: self = .other
            default: self = .error
            }
        }
    }

    /// Why a worker ended, as the `cause` dimension of restarts says it.
    enum RestartCause: String, CaseIterable, Sendable {
        case crash, exit, timeout
        case memoryLimit = "memory_limit"
        case recycle, cancelled
        case protocolError = "protocol_error"
        case startup
    }

    let submitted: Counter
    let completed: Counter
    let failed: [FailureReason: Counter]
    let duration: Timer
    let queueWait: Timer
    let queueDepth: Meter
    let workersAlive: Meter
    let restarts: [RestartCause: Counter]

    /// `nil` when no backend is bootstrapped.
    static func make(pool: String) -> PoolMetrics? {
        if MetricsSystem.factory is NOOPMetricsHandler { return nil }
        return PoolMetrics(pool: pool)
    }

    private init(pool: String) {
        let dimensions = [("pool", pool)]
        submitted = Counter(label: Self.prefix + "tasks_submitted", dimensions: dimensions)
        completed = Counter(label: Self.prefix + "tasks_completed", dimensions: dimensions)
        failed = Dictionary(
            uniqueKeysWithValues: FailureReason.allCases.map {
                (
                    $0,
                    Counter(
                        label: Self.prefix + "tasks_failed",
                        dimensions: dimensions + [("reason", $0.rawValue)])
                )
            })
        duration = Timer(
            label: Self.prefix + "task_duration", dimensions: dimensions, preferredDisplayUnit: .milliseconds)
        queueWait = Timer(
            label: Self.prefix + "queue_wait", dimensions: dimensions, preferredDisplayUnit: .milliseconds)
        queueDepth = Meter(label: Self.prefix + "queue_depth", dimensions: dimensions)
        workersAlive = Meter(label: Self.prefix + "workers_alive", dimensions: dimensions)
        restarts = Dictionary(
            uniqueKeysWithValues: RestartCause.allCases.map {
                (
                    $0,
                    Counter(
                        label: Self.prefix + "worker_restarts",
                        dimensions: dimensions + [("cause", $0.rawValue)])
                )
            })
    }
}
