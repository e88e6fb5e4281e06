import Foundation
import InMemoryLogging
import InMemoryTracing
import Logging
import Multiprocessing
import MultiprocessingPostgres
import MultiprocessingTestSupport
import Testing
import Tracing

extension ClusterTests {
    @Suite("logging, metrics, tracing")
    struct ClusterObservabilityTests {
        /// A configuration with an in-memory logger at `debug`, and a queue name of its own (the
        /// metrics backend is shared by the whole test process).
        static func observed(_ label: String) async throws -> (
            ClusterConfiguration, InMemoryLogHandler, ClusterTaskOptions, ClusterWorkerOptions
        ) {
            var configuration = try await TestDatabase.configuration(label)
            let handler = InMemoryLogHandler()
            var logger = Logger(label: "cluster", factory: { _ in handler })
            logger.logLevel = .debug
            configuration.logger = logger
            let queue = "\(label)-\(getpid())"
            var workerOptions = testWorkerOptions()
            workerOptions.queues = [queue]
            return (configuration, handler, ClusterTaskOptions(queue: queue), workerOptions)
        }

        static func messages(_ handler: InMemoryLogHandler) -> [(Logger.Level, String, Logger.Metadata)] {
            handler.entries.map { ($0.level, $0.message.description, $0.metadata) }
        }

        @Test("a producer's trace continues at the worker: enqueue span, attempt span, the local pool's span")
        func tracing() async throws {
            let (configuration, _, taskOptions, workerOptions) = try await Self.observed("traced")
            defer { Task { await TestDatabase.drop(configuration) } }
            let tracer = InMemoryTracer()
            let requestTrace = try await withTracer(tracer) {
                try await withWorker(configuration, options: workerOptions) {
                    (_: ClusterWorker) async throws in
                    try await withClusterPool(configuration: configuration) {
                        (pool: ClusterPool) async throws in
                        try await tracer.withSpan("request") { span in
                            let value = try await pool.apply(CSquare(), 6, options: taskOptions)
                            #expect(value == 36)
                            return span.context.inMemorySpanContext?.traceID
                        }
                    }
                }
            }
            let spans = tracer.finishedSpans
            let enqueue = try #require(spans.first { $0.operationName == "multiprocessing.postgres.enqueue" })
            let attempt = try #require(spans.first { $0.operationName == "multiprocessing.postgres.task" })
            let local = try #require(spans.first { $0.operationName == "multiprocessing.pool.task" })
            #expect(enqueue.traceID == requestTrace)
            #expect(attempt.traceID == requestTrace)
            #expect(attempt.spanContext.parentSpanID == enqueue.spanID)
            #expect(local.traceID == requestTrace)
            #expect(local.spanContext.parentSpanID == attempt.spanID)
            #expect(attempt.attributes["multiprocessing.postgres.attempt"]?.toSpanAttribute() == 1)
        }

        @Test("events are logged with task metadata, and counted: submitted, claims, failed attempts")
        func loggingAndMetrics() async throws {
            let metrics = TestMetrics.shared
            let (configuration, handler, taskOptions, workerOptions) = try await Self.observed("logged")
            defer { Task { await TestDatabase.drop(configuration) } }
            let queue = taskOptions.queue
            var once = taskOptions
            once.maxAttempts = 1
            try await withWorker(configuration, options: workerOptions) { (_: ClusterWorker) async throws in
                try await withClusterPool(configuration: configuration) { (pool: ClusterPool) async throws in
                    #expect(try await pool.map(CSquare(), over: 0..<5, options: taskOptions).count == 5)
                    await #expect(throws: CodableFailure.self) {
                        try await pool.apply(FailOdd(), 1, options: once)
                    }
                }
            }
            let dimensions = [("queue", queue)]
            #expect(metrics.handler("multiprocessing_postgres_tasks_submitted", dimensions)?.value == 6)
            #expect(metrics.handler("multiprocessing_postgres_claims", dimensions)?.value == 6)
            #expect(metrics.handler("multiprocessing_postgres_attempts_failed", dimensions)?.value == 1)

            let entries = Self.messages(handler)
            #expect(
                entries.contains { $0.0 == .info && $0.1 == "worker started" && $0.2["queues"] == "\(queue)" }
            )
            #expect(entries.contains { $0.0 == .info && $0.1 == "worker stopped" && $0.2["recorded"] == "6" })
            #expect(entries.contains { $0.0 == .debug && $0.1 == "claimed tasks" })
            let failed = try #require(entries.first { $0.1 == "attempt failed" })
            #expect(failed.0 == .notice)
            #expect(failed.2["task.name"] == "\(clusterTaskName(of: FailOdd.self))")
            #expect(failed.2["attempt"] == "1")
            #expect(failed.2["queue"] == "\(queue)")
            #expect("\(failed.2["error"] ?? "")".contains("odd"))
        }

        @Test("an expired lease rescued by a worker's rescuer is logged and counted; the task then runs")
        func rescue() async throws {
            let metrics = TestMetrics.shared
            let (configuration, handler, taskOptions, workerOptions) = try await Self.observed("rescued")
            defer { Task { await TestDatabase.drop(configuration) } }
            try await withClusterPool(configuration: configuration) { (pool: ClusterPool) async throws in
                let future = try await pool.submit(CSquare(), 9, options: taskOptions)
                // A host that claimed the task and died: running, its lease long gone.
                _ = try await TestDatabase.query(
                    """
                    UPDATE \(configuration.schema).tasks SET state = 'running', attempt = 1,
                        worker_id = 'ghost', lease_expires_at = now() - interval '1 minute'
                    WHERE id = \(future.id.rawValue) RETURNING id
                    """)
                try await withWorker(configuration, options: workerOptions) {
                    (_: ClusterWorker) async throws in
                    #expect(try await future.value(timeout: .seconds(60)) == 81)
                }
            }
            #expect(
                metrics.handler("multiprocessing_postgres_lease_rescues", [("queue", taskOptions.queue)])?
                    .value == 1)
            let rescued = try #require(
                Self.messages(handler).first { $0.1.hasPrefix("expired leases rescued") })
            #expect(rescued.0 == .warning)
            #expect(rescued.2["tasks"] == "1")
        }

        @Test(
            "README's and the catalog's tables name every metric of the backend",
            arguments: [
                "README.md", "Sources/MultiprocessingPostgres/MultiprocessingPostgres.docc/Operations.md",
            ])
        func documented(file: String) throws {
            let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
                .deletingLastPathComponent()
            let text = try String(contentsOf: root.appendingPathComponent(file), encoding: .utf8)
            let documented = Set(
                text.split(separator: "\n").filter { $0.hasPrefix("| `multiprocessing_postgres_") }.map {
                    String($0.split(separator: "`")[1])
                })
            let made = Set(
                TestMetrics.shared.made.map(\.label).filter { $0.hasPrefix("multiprocessing_postgres_") })
            // Every metric the suite has made is documented, and the table has all five.
            #expect(made.isSubset(of: documented))
            #expect(
                documented
                    == [
                        "multiprocessing_postgres_tasks_submitted", "multiprocessing_postgres_claims",
                        "multiprocessing_postgres_lease_rescues", "multiprocessing_postgres_attempts_failed",
                        "multiprocessing_postgres_outcomes_refused",
                    ])
        }
    }
}
