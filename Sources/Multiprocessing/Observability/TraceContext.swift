import Tracing

/// A task's trace across the process boundary: the library's span for it in this process, and
/// the carrier that takes the span's context to the process that runs the task, where the
/// child's own instrument extracts it (``ChildSetup`` is where a child bootstraps one).
///
/// Nothing here runs unless an instrument is bootstrapped (or bound with `withTracer`): with
/// the default no-op instrument ``begin(_:attributes:)`` returns `nil` and a task carries no
/// carrier, so untraced programs pay one check per call, map or start.
package final class TaskTrace: Sendable {
    package let span: any Span
    /// The span's context, injected for the process that runs the task.
    package let carrier: [String: String]

    private init(span: any Span, carrier: [String: String]) {
        self.span = span
        self.carrier = carrier
    }

    /// Whether spans would be recorded: an instrument other than the no-op one is active.
    package static var isActive: Bool {
        let instrument = InstrumentationSystem.instrument
        return !(instrument is NoOpInstrument) && !(instrument is NoOpTracer)
    }

    /// Opens the library's span for one task, a child of the caller's `ServiceContext`; `nil`
    /// when nothing records spans.
    package static func begin(_ operation: String, attributes: (inout SpanAttributes) -> Void) -> TaskTrace? {
        guard isActive else { return nil }
        let tracer = InstrumentationSystem.tracer
        let span = tracer.startSpan(
            operation, context: ServiceContext.current ?? .topLevel, ofKind: .producer)
        span.updateAttributes(attributes)
        span.addEvent("queued")
        var carrier: [String: String] = [:]
        InstrumentationSystem.instrument.inject(span.context, into: &carrier, using: DictionaryInjector())
        return TaskTrace(span: span, carrier: carrier)
    }

    /// The caller's context injected as it is, with no span of the library's (for work that
    /// opens none).
    package static func currentCarrier() -> [String: String]? {
        guard isActive, let context = ServiceContext.current else { return nil }
        var carrier: [String: String] = [:]
        InstrumentationSystem.instrument.inject(context, into: &carrier, using: DictionaryInjector())
        return carrier.isEmpty ? nil : carrier
    }

    /// In the process that runs the task: the context the carrier holds, extracted with this
    /// process's instrument (nothing, with the no-op one).
    package static func extract(_ carrier: [String: String]) -> ServiceContext {
        var context = ServiceContext.topLevel
        InstrumentationSystem.instrument.extract(carrier, into: &context, using: DictionaryExtractor())
        return context
    }

    /// Ends the span: `error` marks it failed.
    package func end(error: (any Error)? = nil, attributes: (inout SpanAttributes) -> Void = { _ in }) {
        span.updateAttributes(attributes)
        if let error {
            span.recordError(error)
            span.setStatus(SpanStatus(code: .error, message: "\(error)"))
        } else {
            span.setStatus(SpanStatus(code: .ok))
        }
        span.addEvent("finished")
        span.end()
    }
}

/// Writes a context's keys into the `[String: String]` carrier a task travels with.
struct DictionaryInjector: Injector {
    func inject(_ value: String, forKey key: String, into carrier: inout [String: String]) {
        carrier[key] = value
    }
}

/// Reads them back in the process that runs the task.
struct DictionaryExtractor: Extractor {
    func extract(key: String, from carrier: [String: String]) -> String? { carrier[key] }
}
