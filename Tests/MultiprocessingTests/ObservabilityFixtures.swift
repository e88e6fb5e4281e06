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

/// A metrics backend that keeps every value, keyed by label and dimensions. Bootstrapped once
/// for the whole test process (``TestMetrics/shared``); tests read only their own pool's labels.
final class TestMetrics: MetricsFactory, Sendable {
    static let shared: TestMetrics = {
        let metrics = TestMetrics()
        MetricsSystem.bootstrap(metrics)
        return metrics
    }()

    final class Handler: CounterHandler, FloatingPointCounterHandler, RecorderHandler, MeterHandler,
        TimerHandler,
        Sendable
    {
        let label: String
        let dimensions: [(String, String)]
        let kind: String
        init(label: String, dimensions: [(String, String)], kind: String) {
            self.label = label
            self.dimensions = dimensions
            self.kind = kind
        }
        let values = Mutex<[Double]>([])
        private let total = Mutex<Double>(0)
        func increment(by amount: Int64) { add(Double(amount)) }
        func increment(by amount: Double) { add(amount) }
        func decrement(by amount: Double) { add(-amount) }
        func reset() { total.withLock { $0 = 0 } }
        func record(_ value: Int64) { set(Double(value)) }
        func record(_ value: Double) { set(value) }
        func set(_ value: Int64) { set(Double(value)) }
        func set(_ value: Double) { total.withLock { $0 = value } }
        func recordNanoseconds(_ duration: Int64) { values.withLock { $0.append(Double(duration)) } }
        private func add(_ amount: Double) { total.withLock { $0 += amount } }
        var value: Double { total.withLock { $0 } }
        var recorded: [Double] { values.withLock { $0 } }
    }

    private let handlers = Mutex<[String: Handler]>([:])

    static func key(_ label: String, _ dimensions: [(String, String)]) -> String {
        ([label] + dimensions.sorted { $0.0 < $1.0 }.map { "\($0.0)=\($0.1)" }).joined(separator: ",")
    }

    /// The metric `label` with `dimensions`, if one was made.
    func handler(_ label: String, _ dimensions: [(String, String)]) -> Handler? {
        handlers.withLock { $0[Self.key(label, dimensions)] }
    }

    /// Every metric made so far: label, dimensions and kind (`counter`, `meter`, `timer`...).
    var made: [(label: String, dimensions: [(String, String)], kind: String)] {
        handlers.withLock { $0.values.map { ($0.label, $0.dimensions, $0.kind) } }
    }

    private func make(_ label: String, _ dimensions: [(String, String)], _ kind: String) -> Handler {
        handlers.withLock { handlers in
            let key = Self.key(label, dimensions)
            if let existing = handlers[key] { return existing }
            let handler = Handler(label: label, dimensions: dimensions, kind: kind)
            handlers[key] = handler
            return handler
        }
    }

    func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        make(label, dimensions, "counter")
    }
    func makeFloatingPointCounter(label: String, dimensions: [(String, String)])
        -> any FloatingPointCounterHandler
    {
        make(label, dimensions, "floating-point counter")
    }
    func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        make(label, dimensions, "recorder")
    }
    func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler {
        make(label, dimensions, "meter")
    }
    func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        make(label, dimensions, "timer")
    }
    func destroyCounter(_ handler: any CounterHandler) {}
    func destroyFloatingPointCounter(_ handler: any FloatingPointCounterHandler) {}
    func destroyRecorder(_ handler: any RecorderHandler) {}
    func destroyMeter(_ handler: any MeterHandler) {}
    func destroyTimer(_ handler: any TimerHandler) {}
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
