import CoreMetrics
import Foundation
import InMemoryLogging
import InMemoryTracing
import Logging
import Multiprocessing
import MultiprocessingTestSupport
import Testing
import Tracing

@Suite("Observability: queues and locks")
struct QueueObservabilityTests {
    @Test("a JoinableQueue logs and counts a consumer that died holding items, and its depth")
    func deadConsumer() async throws {
        let metrics = TestMetrics.shared
        let records = InMemoryLogHandler()
        let label = "jobs-\(getpid())"
        let queue = try JoinableQueue<Int>(
            unfinishedItemsOfDeadConsumers: .requeue, label: label,
            logger: Logger(label: "queue.test") { _ in records })
        for i in 1...5 { try queue.putNowait(i) }
        let dimensions = [("queue", label)]
        #expect(metrics.handler("multiprocessing_queue_depth", dimensions)?.value == 5)
        let log = try SharedArray<Int>(repeating: 0, count: 4, locked: false)
        let victim = try ChildProcess(HoldingConsumer(queue: queue, log: log, take: 3, finish: 1))
        try await victim.start()
        try await waitForSlot(log)
        let pid = try #require(victim.pid)
        victim.kill()
        #expect(try await victim.join() == .signaled(.kill))
        // A waiting join notices the death and puts 2 and 3 back.
        await #expect(throws: QueueError.timedOut) { try await queue.join(timeout: .milliseconds(300)) }
        for expected in 2...5 {
            #expect(try await queue.get(timeout: .seconds(10)) == expected)
            try queue.taskDone()
        }
        try await queue.join(timeout: .seconds(10))
        let died = records.entries.filter { $0.message.description == "queue consumer died holding items" }
        #expect(died.count == 1)
        #expect(died.first?.level == .warning)
        #expect(died.first?.metadata["holder.pid"]?.description == "\(pid)")
        #expect(died.first?.metadata["items.requeued"]?.description == "2")
        #expect(died.first?.metadata["queue"]?.description == label)
        #expect(metrics.handler("multiprocessing_queue_items_requeued", dimensions)?.value == 2)
        #expect(metrics.handler("multiprocessing_queue_items_abandoned", dimensions)?.value == 0)
        #expect(metrics.handler("multiprocessing_queue_depth", dimensions)?.value == 0)
    }

    @Test("a queue logs and counts its lock taken over from a consumer killed holding it")
    func lockRecovered() async throws {
        let metrics = TestMetrics.shared
        let records = InMemoryLogHandler()
        let label = "stalls-\(getpid())"
        let queue = try ProcessQueue<StallItem>(
            label: label, logger: Logger(label: "queue.test") { _ in records })
        try queue.putBlocking(StallItem(index: 0, stall: true, padding: 4000))
        try queue.putBlocking(StallItem(index: 1, stall: false, padding: 4000))
        let flag = try SharedMemory(size: 8)
        let victim = try ChildProcess(StallingConsumer(queue: queue, flag: flag))
        try await victim.start()
        try await waitForFlag(flag)
        let pid = try #require(victim.pid)
        victim.kill()
        #expect(try await victim.join() == .signaled(.kill))
        #expect(try queue.getBlocking(timeout: .seconds(10)).index == 0)
        let taken = records.entries.filter {
            $0.message.description.contains("taken over from a process that died")
        }
        #expect(taken.count == 1)
        #expect(taken.first?.level == .warning)
        #expect(taken.first?.metadata["holder.pid"]?.description == "\(pid)")
        #expect(metrics.handler("multiprocessing_queue_lock_recoveries", [("queue", label)])?.value == 1)
    }

    @Test("a ProcessLock taken over from a dead holder is logged on CurrentProcess.logger")
    func lockOwnerDied() async throws {
        let records = InMemoryLogHandler()
        CurrentProcess.logger = Logger(label: "locks") { _ in records }
        defer { CurrentProcess.logger = nil }
        let lock = try ProcessLock()
        let flag = try SharedMemory(size: 8)
        let holder = try ChildProcess(LockHolder(lock: lock, flag: flag))
        try await holder.start()
        try await waitForFlag(flag)
        let pid = try #require(holder.pid)
        holder.kill()
        _ = try await holder.join()
        try await onThread { lock.withLockBlocking {} }
        // Other tests' locks may log here too: this one's record names its holder.
        let taken = records.entries.filter { $0.metadata["holder.pid"]?.description == "\(pid)" }
        #expect(
            taken.map(\.message.description) == ["ProcessLock taken over from a process that died holding it"]
        )
    }

    @Test("without a logger or metrics backend a queue logs nothing and its handle works as before")
    func quiet() throws {
        let queue = try SimpleQueue<Int>()
        try queue.putBlocking(1)
        #expect(try queue.getBlocking() == 1)
    }
}

@Suite("Observability: the metrics table")
struct MetricsTableTests {
    /// The rows of the table in `file` (README.md or the catalog's article): name, kind and the
    /// backticked words of the columns after them (dimensions and their values).
    static func table(_ file: String) throws -> [String: (kind: String, words: Set<String>)] {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let text = try String(contentsOf: root.appendingPathComponent(file), encoding: .utf8)
        var rows: [String: (kind: String, words: Set<String>)] = [:]
        for line in text.split(separator: "\n") where line.hasPrefix("| `multiprocessing_") {
            let cells = line.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
            let name = cells[0].trimmingCharacters(in: CharacterSet(charactersIn: "`"))
            let words = cells.dropFirst(2).joined(separator: " ").split(
                separator: "`", omittingEmptySubsequences: false
            ).enumerated().filter { $0.offset % 2 == 1 }
                .map { String($0.element) }
            rows[name] = (cells[1], Set(words))
        }
        return rows
    }

    @Test(
        "README's and the catalog's table name every metric the library makes, its kind and dimensions",
        arguments: ["README.md", "Sources/Multiprocessing/Multiprocessing.docc/Observability.md"])
    func documented(file: String) async throws {
        let metrics = TestMetrics.shared
        // Make every metric: a pool and a queue make theirs when created, the Manager on its
        // first compaction.
        try await withProcessPool(workers: 1) { (_: ProcessPool) async throws in }
        _ = try ProcessQueue<Int>(label: "table")
        let writer = try SharedDictionary<Int, String>(capacity: 512)
        for round in 0..<500 { try writer.updateValue("value \(round)", forKey: round % 7) }
        // The PostgreSQL backend's own rows are checked by its suite.
        let table = try Self.table(file).filter { !$0.key.hasPrefix("multiprocessing_postgres_") }
        let made = metrics.made.filter {
            $0.label.hasPrefix("multiprocessing_") && !$0.label.hasPrefix("multiprocessing_postgres_")
        }
        #expect(Set(made.map(\.label)) == Set(table.keys))
        for metric in made {
            let row = try #require(table[metric.label], "\(metric.label) is not in \(file)")
            #expect(row.kind == metric.kind, "\(metric.label)")
            for (key, value) in metric.dimensions {
                #expect(row.words.contains(key), "\(metric.label): dimension \(key)")
                if key != "pool" && key != "queue" {
                    #expect(row.words.contains(value), "\(metric.label): \(key) \(value)")
                }
            }
        }
    }
}

extension TracingTests {
    @Test("a TracedItem carries its producer's trace through a queue to a child started outside it")
    func tracedQueueItem() async throws {
        try CurrentProcess.setChildSetup(InMemoryTracingSetup.self)
        defer { try? CurrentProcess.setChildSetup(nil) }
        let tracer = InMemoryTracer()
        let queue = try ProcessQueue<TracedItem<Int>>()
        let (seen, producerTrace) = try await withTracer(tracer) {
            // Started outside the producer's span: the child's own trace is another one.
            let child = try ChildProcess(TracedItemConsumer(queue: queue))
            try await child.start()
            let producerTrace = try await tracer.withSpan("produce") { span in
                try await queue.put(TracedItem(42))
                return span.context.inMemorySpanContext?.traceID
            }
            return (try await child.value, producerTrace)
        }
        let trace = try #require(producerTrace)
        #expect(seen[0] != trace)  // The child's launch context: not the producer's.
        #expect(seen[1] == trace)  // The item's context.
        #expect(seen[2] == trace)  // A span opened in it joins the producer's trace.
        #expect(seen[4] == "42")
        // Without an instrument, the item carries nothing.
        #expect(TracedItem(1).carrier.isEmpty)
    }
}
