import Tracing

/// A value that carries the `ServiceContext` it was made in to another process: put it in a
/// queue, send it on a channel or a Manager container, and the process that takes it out works
/// in the same trace.
///
/// The library's tasks (``ChildProcess``, pool calls and maps) carry their caller's context by
/// themselves. Queue items carry one only where asked, by being a `TracedItem`, so that queues
/// of plain values pay nothing for it:
///
/// ```swift
/// let jobs = try ProcessQueue<TracedItem<String>>()
/// try await jobs.put(TracedItem("resize photo 7"))   // inside the caller's span
///
/// // In the consumer (a child whose ChildSetup bootstrapped the tracer):
/// let job = try await jobs.get()
/// try await job.withContext { name in
///     try await withSpan("consume \(name)") { _ in /* joins the producer's trace */ }
/// }
/// ```
///
/// The context is injected with the instrument bootstrapped where the item is made and
/// extracted with the one where it is used; with the default no-op instrument the item carries
/// nothing and ``context`` is empty.
public struct TracedItem<Value: Codable & Sendable>: Codable, Sendable {
    /// The item itself.
    public var value: Value
    /// The context's keys as the producer's instrument wrote them (empty when none was active).
    public let carrier: [String: String]

    /// Wraps `value` with the current task's `ServiceContext`.
    public init(_ value: Value) {
        self.value = value
        carrier = TaskTrace.currentCarrier() ?? [:]
    }

    /// The producer's context, extracted with this process's instrument.
    public var context: ServiceContext {
        carrier.isEmpty ? .topLevel : TaskTrace.extract(carrier)
    }

    /// Runs `body` with ``value`` in the producer's context (spans `body` opens join its trace).
    public func withContext<Result>(_ body: (Value) async throws -> Result) async rethrows -> Result {
        if carrier.isEmpty { return try await body(value) }
        return try await ServiceContext.withValue(context) { try await body(value) }
    }
}
