import CoreMetrics
import Logging
import Multiprocessing
import Synchronization
import Tracing

/// The cluster's metrics (swift-metrics), made once per producer or worker and only when a
/// metrics backend is bootstrapped: with the default no-op backend nothing is made or counted.
/// Names and dimensions: README, "Beyond one machine"; the MultiprocessingPostgres catalog.
final class ClusterMetrics: Sendable {
    static let prefix = "multiprocessing_postgres_"

    private let labelled: Mutex<[String: Counter]>

    private init() { labelled = Mutex([:]) }

    /// `nil` when no backend is bootstrapped.
    static func make() -> ClusterMetrics? {
        if MetricsSystem.factory is NOOPMetricsHandler { return nil }
        return ClusterMetrics()
    }

    /// One counter per name and queue, made on first use (queues are open-ended).
    private func counter(_ name: String, queue: String?) -> Counter {
        let key = queue.map { "\(name)|\($0)" } ?? name
        return labelled.withLock { counters in
            if let counter = counters[key] { return counter }
            let counter = Counter(
                label: Self.prefix + name, dimensions: queue.map { [("queue", $0)] } ?? [])
            counters[key] = counter
            return counter
        }
    }

    /// Tasks stored by a producer.
    func submitted(_ count: Int, queue: String) {
        counter("tasks_submitted", queue: queue).increment(by: count)
    }

    /// Tasks claimed by a worker (attempts started), per queue.
    func claimed(_ tasks: [ClaimedTask]) {
        for (queue, group) in Dictionary(grouping: tasks, by: \.queue) {
            counter("claims", queue: queue).increment(by: group.count)
        }
    }

    /// Expired leases a rescuer returned to the queue (or failed, out of attempts), per queue.
    func rescued(queues: [String]) {
        for (queue, group) in Dictionary(grouping: queues, by: { $0 }) {
            counter("lease_rescues", queue: queue).increment(by: group.count)
        }
    }

    /// Attempts that ended in a failure at this worker, per queue.
    func attemptFailed(queue: String) { counter("attempts_failed", queue: queue).increment() }

    /// Outcomes refused by the fence: the lease had passed to another worker or the task was
    /// cancelled.
    func refused(_ count: Int) { counter("outcomes_refused", queue: nil).increment(by: count) }

    /// Every metric name, for the documentation test.
    static let names = ["tasks_submitted", "claims", "lease_rescues", "attempts_failed", "outcomes_refused"]
}

/// The cluster's tracing: a producer span per enqueue whose context is stored with the tasks, and
/// a consumer span per attempt at the worker, a child of the stored context, inside which the
/// local pool's own span (and the task's process) joins the trace.
enum ClusterTracing {
    /// Opens the enqueue span and returns it with the carrier to store; `nil` when no
    /// instrument is bootstrapped.
    static func beginEnqueue(name: String, queue: String, count: Int) -> TaskTrace? {
        TaskTrace.begin("multiprocessing.postgres.enqueue") { attributes in
            attributes["multiprocessing.task.name"] = name
            attributes["multiprocessing.postgres.queue"] = queue
            attributes["multiprocessing.postgres.tasks"] = count
        }
    }

    /// Runs `body` in a consumer span for one attempt, a child of the context stored with the
    /// task (or a new trace when it has none); runs it plainly when nothing records spans.
    static func attempt<T: Sendable>(
        _ task: ClaimedTask, worker: String, _ body: () async -> Result<T, any Error>
    ) async -> Result<T, any Error> {
        guard TaskTrace.isActive else { return await body() }
        let parent = task.trace.map(TaskTrace.extract) ?? .topLevel
        let span = InstrumentationSystem.tracer.startSpan(
            "multiprocessing.postgres.task", context: parent, ofKind: .consumer)
        span.updateAttributes { attributes in
            attributes["multiprocessing.task.name"] = task.name
            attributes["multiprocessing.postgres.task_id"] = Int(task.id)
            attributes["multiprocessing.postgres.attempt"] = Int(task.attempt)
            attributes["multiprocessing.postgres.queue"] = task.queue
            attributes["multiprocessing.postgres.worker"] = worker
        }
        let result = await ServiceContext.withValue(span.context) { await body() }
        if case .failure(let error) = result {
            span.recordError(error)
            span.setStatus(SpanStatus(code: .error, message: "\(error)"))
        } else {
            span.setStatus(SpanStatus(code: .ok))
        }
        span.end()
        return result
    }
}

extension Logger.Metadata {
    /// The metadata of one attempt's events.
    static func attempt(_ task: ClaimedTask, worker: String) -> Logger.Metadata {
        [
            "task": "\(task.id)", "task.name": "\(task.name)", "attempt": "\(task.attempt)",
            "queue": "\(task.queue)", "worker": "\(worker)",
        ]
    }
}
