import CoreMetrics
import InMemoryTracing
import Logging
import Multiprocessing
import Synchronization
import Tracing

#if canImport(Glibc)
    import Glibc
#endif

/// Logs `count` records with swift-log, then traps if asked (a crash right after its records).
struct ChattyTask: ProcessTask {
    var count: Int
    var trapAfter = false
    func run() async throws {
        let logger = Logger(label: "chatty")
        for i in 0..<count {
            logger.info("record \(i)", metadata: ["index": "\(i)"])
        }
        logger.debug("below the parent's level")
        if trapAfter { fatalError("trapping after \(count) records") }
    }
}

/// A pool function that logs one record per input.
struct ChattyFunction: ProcessFunction {
    func callAsFunction(_ x: Int) async throws -> Int {
        Logger(label: "chatty.worker").notice("working on \(x)")
        return x
    }
}

/// Throws for negative inputs.
struct FailNegative: ProcessFunction {
    struct Negative: Error, Codable {}
    func callAsFunction(_ x: Int) async throws -> Int {
        if x < 0 { throw Negative() }
        return x
    }
}

/// The trace the child sees: the extracted context's trace id, and the trace and parent span of
/// a span it opens itself.
struct TraceProbe: ProcessTask {
    func run() async throws -> [String] { TraceProbe.probe() }

    static func probe() -> [String] {
        let extracted = ServiceContext.current?.inMemorySpanContext?.traceID ?? "none"
        return InstrumentationSystem.tracer.withSpan("child work") { span in
            let context = span.context.inMemorySpanContext
            return [extracted, context?.traceID ?? "none", context?.parentSpanID ?? "none"]
        }
    }
}

struct TraceProbeFunction: ProcessFunction {
    func callAsFunction(_ x: Int) async throws -> [String] { TraceProbe.probe() }
}

/// The tests' child setup: children record spans in memory, like the parent.
enum InMemoryTracingSetup: ChildSetup {
    static func setUp() { InstrumentationSystem.bootstrap(InMemoryTracer()) }
}

/// Takes one traced item and reports the trace it sees: outside the item's context (the
/// child's own), then inside it (the producer's), as ``TraceProbe`` does.
struct TracedItemConsumer: ProcessTask {
    var queue: ProcessQueue<TracedItem<Int>>
    func run() async throws -> [String] {
        let outside = ServiceContext.current?.inMemorySpanContext?.traceID ?? "none"
        let item = try await queue.get(timeout: .seconds(20))
        let inside = await item.withContext { value in TraceProbe.probe() + ["\(value)"] }
        return [outside] + inside
    }
}
