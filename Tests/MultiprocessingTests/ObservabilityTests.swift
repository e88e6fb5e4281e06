import InMemoryLogging
import InMemoryTracing
import Logging
import MultiprocessingTestSupport
import Testing
import Tracing

@testable import Multiprocessing

#if canImport(Glibc)
    import Glibc
#endif

/// A logger whose records the test reads back.
private func recordingLogger(level: Logger.Level = .info) -> (Logger, InMemoryLogHandler) {
    let handler = InMemoryLogHandler()
    var logger = Logger(label: "test", factory: { _ in handler })
    logger.logLevel = level
    return (logger, handler)
}

@Suite("Observability: logging")
struct LoggingTests {
    @Test(
        "a child's swift-log records reach the parent's logger with its name and pid",
        arguments: [StartMethod.spawn, .forkserver])
    func forwarded(method: StartMethod) async throws {
        let (logger, records) = recordingLogger()
        let child = try ChildProcess(
            ChattyTask(count: 3), name: "chatty-child", startMethod: method, logger: logger,
            forwardsLogs: true)
        try await child.start()
        try await child.value
        let pid = try #require(child.pid)
        let forwarded = records.entries.filter { $0.metadata["logger.label"] == "chatty" }
        #expect(forwarded.map(\.message.description) == ["record 0", "record 1", "record 2"])
        for entry in forwarded {
            #expect(entry.metadata["process.name"] == "chatty-child")
            #expect(entry.metadata["process.pid"]?.description == "\(pid)")
        }
        #expect(forwarded.first?.metadata["index"] == "0")
        // The child logs at the parent's level: its debug record was never sent.
        #expect(!records.entries.contains { $0.message.description.contains("below") })
    }

    @Test("a flood of records arrives whole, and a crash right after them loses none")
    func floodThenCrash() async throws {
        let (logger, records) = recordingLogger()
        let child = try ChildProcess(
            ChattyTask(count: 5000, trapAfter: true), logger: logger, forwardsLogs: true)
        try await child.start()
        await #expect(throws: ProcessError.self) { try await child.value }
        #expect(records.entries.filter { $0.metadata["logger.label"] == "chatty" }.count == 5000)
        let crash = records.entries.filter { $0.message.description == "child process crashed" }
        #expect(crash.count == 1)
        #expect(crash.first?.level == .error)
        #expect(crash.first?.metadata["crash.report"] != nil)
    }

    @Test("without forwarding, nothing is logged but the library's own events")
    func notForwarded() async throws {
        let (logger, records) = recordingLogger(level: .debug)
        let child = try ChildProcess(ChattyTask(count: 2), logger: logger)
        try await child.start()
        try await child.value
        #expect(!records.entries.contains { $0.metadata["logger.label"] != nil })
        #expect(
            records.entries.map(\.message.description) == ["child process started", "child process exited"])
    }

    @Test("a pool logs a lost worker with its task and attempt, the retry, and the workers' own records")
    func pool() async throws {
        let (logger, records) = recordingLogger()
        var options = PoolOptions()
        options.logger = logger
        options.forwardsWorkerLogs = true
        options.retries = 1
        options.label = "logged-pool"
        try await withProcessPool(workers: 1, options: options) { (pool: ProcessPool) async throws in
            #expect(try await pool.apply(ChattyFunction(), 7) == 7)
            await #expect(throws: PoolError.self) { try await pool.apply(KillOn(victim: 1), 1) }
        }
        let lost = records.entries.filter {
            $0.message.description == "pool worker lost while running a task"
        }
        #expect(lost.map { $0.metadata["attempt"]?.description } == ["1", "2"])
        #expect(lost.allSatisfy { $0.metadata["task"] == "1" && $0.metadata["pool"] == "logged-pool" })
        #expect(
            records.entries.filter { $0.message.description == "retrying task on a fresh worker" }.count == 1)
        // Once, by the pool (with the task and attempt), not again as a child process's end.
        #expect(!records.entries.contains { $0.message.description.hasPrefix("child process") })
        let worker = records.entries.filter { $0.metadata["logger.label"] == "chatty.worker" }
        #expect(worker.map(\.message.description) == ["working on 7"])
        #expect(worker.first?.metadata["process.name"] == "PoolWorker-1")
    }

    @Test("the poison rule is logged when a task has killed too many workers")
    func poison() async throws {
        let (logger, records) = recordingLogger()
        var options = PoolOptions()
        options.logger = logger
        options.retries = 5
        options.maxWorkersKilledPerTask = 2
        _ = try await withProcessPool(workers: 1, options: options) { (pool: ProcessPool) async throws in
            await #expect(throws: PoolError.self) { try await pool.apply(KillOn(victim: 1), 1) }
        }
        let poisoned = records.entries.filter { $0.message.description.contains("poison rule") }
        #expect(poisoned.count == 1)
        #expect(poisoned.first?.metadata["attempt"]?.description == "2")
    }
}

extension LoggingTests {
    @Test("a worker killed on a time-out: a warning with its task, counted as a timeout failure and restart")
    func timeout() async throws {
        let metrics = TestMetrics.shared
        let (logger, records) = recordingLogger()
        var options = PoolOptions()
        options.logger = logger
        options.label = "timeouts-\(getpid())"
        options.taskTimeout = .milliseconds(300)
        options.terminationGrace = .milliseconds(200)
        let pid = try await withProcessPool(workers: 1, options: options) {
            (pool: ProcessPool) async throws in
            let pid = try await pool.apply(Nap(), 0)
            await #expect(throws: PoolError.self) { try await pool.apply(Nap(), 30) }
            return pid
        }
        let killed = records.entries.filter {
            $0.message.description == "pool worker killed: its task timed out"
        }
        #expect(killed.count == 1)
        #expect(killed.first?.level == .warning)
        #expect(killed.first?.metadata["process.pid"]?.description == "\(pid)")
        #expect(killed.first?.metadata["task"] != nil)
        #expect(killed.first?.metadata["pool"]?.description == options.label)
        let pool = [("pool", options.label!)]
        #expect(
            metrics.handler("multiprocessing_pool_tasks_failed", pool + [("reason", "timeout")])?.value == 1)
        #expect(
            metrics.handler("multiprocessing_pool_worker_restarts", pool + [("cause", "timeout")])?.value == 1
        )
    }
}

@Suite("Observability: metrics")
struct MetricsTests {
    @Test("a pool counts its tasks by outcome, times them, and counts its workers and restarts")
    func pool() async throws {
        let metrics = TestMetrics.shared
        var options = PoolOptions()
        let label = "metrics-\(getpid())"
        options.label = label
        try await withProcessPool(workers: 1, options: options) { (pool: ProcessPool) async throws in
            #expect(try await pool.map(Square(), over: 0..<4, chunkSize: 1) == [0, 1, 4, 9])
            await #expect(throws: FailNegative.Negative.self) { try await pool.apply(FailNegative(), -1) }
            await #expect(throws: PoolError.self) { try await pool.apply(KillOn(victim: 1), 1) }
        }
        let pool = [("pool", label)]
        func value(_ name: String, _ extra: [(String, String)] = []) -> Double? {
            metrics.handler("multiprocessing_pool_" + name, pool + extra)?.value
        }
        #expect(value("tasks_submitted") == 6)
        #expect(value("tasks_completed") == 4)
        #expect(value("tasks_failed", [("reason", "error")]) == 1)
        #expect(value("tasks_failed", [("reason", "worker_lost")]) == 1)
        #expect(value("worker_restarts", [("cause", "crash")]) == 1)
        #expect(value("workers_alive") == 0)
        #expect(value("queue_depth") == 0)
        #expect(metrics.handler("multiprocessing_pool_task_duration", pool)?.recorded.count == 6)
        #expect(metrics.handler("multiprocessing_pool_queue_wait", pool)?.recorded.count == 6)
    }
}

@Suite("Observability: tracing", .serialized)
struct TracingTests {
    @Test("a child's spans join the parent's trace, under the library's span for the task")
    func child() async throws {
        try CurrentProcess.setChildSetup(InMemoryTracingSetup.self)
        defer { try? CurrentProcess.setChildSetup(nil) }
        let tracer = InMemoryTracer()
        let (seen, parentTrace) = try await withTracer(tracer) {
            try await tracer.withSpan("request") { span in
                let child = try ChildProcess(TraceProbe())
                try await child.start()
                return (try await child.value, span.context.inMemorySpanContext?.traceID)
            }
        }
        let finished = tracer.finishedSpans
        let library = try #require(finished.first { $0.operationName == "multiprocessing.process" })
        #expect(seen[0] == parentTrace)  // The extracted context.
        #expect(seen[1] == parentTrace)  // The child's own span.
        #expect(seen[2] == library.spanID)  // Under the library's span.
        #expect(library.traceID == parentTrace)
    }

    @Test("a pool task's span goes queued, running, finished, and the worker's spans join it")
    func pool() async throws {
        try CurrentProcess.setChildSetup(InMemoryTracingSetup.self)
        defer { try? CurrentProcess.setChildSetup(nil) }
        let tracer = InMemoryTracer()
        let (seen, parentTrace) = try await withTracer(tracer) {
            try await tracer.withSpan("request") { span in
                try await withProcessPool(workers: 1) { (pool: ProcessPool) async throws in
                    (try await pool.apply(TraceProbeFunction(), 0), span.context.inMemorySpanContext?.traceID)
                }
            }
        }
        let library = try #require(
            tracer.finishedSpans.first { $0.operationName == "multiprocessing.pool.task" })
        #expect(seen[0] == parentTrace)
        #expect(seen[1] == parentTrace)
        #expect(seen[2] == library.spanID)
        #expect(library.events.map(\.name) == ["queued", "running", "finished"])
        #expect(library.status?.code == .ok)
    }

    @Test("without a tracer, a task carries no trace context and opens no span")
    func untraced() async throws {
        #expect(!TaskTrace.isActive)
        let child = try ChildProcess(TraceProbe())
        try await child.start()
        #expect(try await child.value[0] == "none")
    }
}

extension MetricsTests {
    @Test("the Manager counts its log compactions")
    func managerCompactions() throws {
        let metrics = TestMetrics.shared
        let writer = try SharedDictionary<Int, String>(capacity: 512)
        let before = metrics.handler("multiprocessing_manager_log_compactions", [])?.value ?? 0
        for round in 0..<500 { try writer.updateValue("value \(round)", forKey: round % 7) }
        let after = try #require(metrics.handler("multiprocessing_manager_log_compactions", [])?.value)
        // Other tests compact too, in parallel: at least this one's.
        #expect(after - before >= Double(writer.log.compactions))
    }
}
