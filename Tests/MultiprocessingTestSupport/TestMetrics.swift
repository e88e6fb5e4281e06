import CoreMetrics
import Synchronization

// Test support shared by the test targets: they run in one test process, where a metrics
// backend can be bootstrapped only once.

/// A metrics backend that keeps every value, keyed by label and dimensions. Bootstrapped once
/// for the whole test process (``TestMetrics/shared``); tests read only their own pool's labels.
public final class TestMetrics: MetricsFactory, Sendable {
    public static let shared: TestMetrics = {
        let metrics = TestMetrics()
        MetricsSystem.bootstrap(metrics)
        return metrics
    }()

    public final class Handler: CounterHandler, FloatingPointCounterHandler, RecorderHandler, MeterHandler,
        TimerHandler,
        Sendable
    {
        public let label: String
        public let dimensions: [(String, String)]
        public let kind: String
        public init(label: String, dimensions: [(String, String)], kind: String) {
            self.label = label
            self.dimensions = dimensions
            self.kind = kind
        }
        let values = Mutex<[Double]>([])
        private let total = Mutex<Double>(0)
        public func increment(by amount: Int64) { add(Double(amount)) }
        public func increment(by amount: Double) { add(amount) }
        public func decrement(by amount: Double) { add(-amount) }
        public func reset() { total.withLock { $0 = 0 } }
        public func record(_ value: Int64) { set(Double(value)) }
        public func record(_ value: Double) { set(value) }
        public func set(_ value: Int64) { set(Double(value)) }
        public func set(_ value: Double) { total.withLock { $0 = value } }
        public func recordNanoseconds(_ duration: Int64) { values.withLock { $0.append(Double(duration)) } }
        private func add(_ amount: Double) { total.withLock { $0 += amount } }
        public var value: Double { total.withLock { $0 } }
        public var recorded: [Double] { values.withLock { $0 } }
    }

    private let handlers = Mutex<[String: Handler]>([:])

    public static func key(_ label: String, _ dimensions: [(String, String)]) -> String {
        ([label] + dimensions.sorted { $0.0 < $1.0 }.map { "\($0.0)=\($0.1)" }).joined(separator: ",")
    }

    /// The metric `label` with `dimensions`, if one was made.
    public func handler(_ label: String, _ dimensions: [(String, String)]) -> Handler? {
        handlers.withLock { $0[Self.key(label, dimensions)] }
    }

    /// Every metric made so far: label, dimensions and kind (`counter`, `meter`, `timer`...).
    public var made: [(label: String, dimensions: [(String, String)], kind: String)] {
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

    public func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        make(label, dimensions, "counter")
    }
    public func makeFloatingPointCounter(label: String, dimensions: [(String, String)])
        -> any FloatingPointCounterHandler
    {
        make(label, dimensions, "floating-point counter")
    }
    public func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool)
        -> any RecorderHandler
    {
        make(label, dimensions, "recorder")
    }
    public func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler {
        make(label, dimensions, "meter")
    }
    public func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        make(label, dimensions, "timer")
    }
    public func destroyCounter(_ handler: any CounterHandler) {}
    public func destroyFloatingPointCounter(_ handler: any FloatingPointCounterHandler) {}
    public func destroyRecorder(_ handler: any RecorderHandler) {}
    public func destroyMeter(_ handler: any MeterHandler) {}
    public func destroyTimer(_ handler: any TimerHandler) {}
}
