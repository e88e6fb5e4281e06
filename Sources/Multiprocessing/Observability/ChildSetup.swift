import Logging
import Synchronization
import Tracing

/// Code every child runs once, before its task: where a child bootstraps what `main`
/// bootstraps in the parent.
///
/// A child is a copy of the program that never runs `main` (the library takes over before it),
/// so `LoggingSystem.bootstrap`, `MetricsSystem.bootstrap` and `InstrumentationSystem.bootstrap`
/// calls there do not run in it. Name a type that makes them, once, in the parent:
///
/// ```swift
/// enum Telemetry: ChildSetup {
///     static func setUp() {
///         InstrumentationSystem.bootstrap(OTelTracer(...))     // the same tracer as in main
///     }
/// }
///
/// // main:
/// InstrumentationSystem.bootstrap(OTelTracer(...))
/// try CurrentProcess.setChildSetup(Telemetry.self)
/// ```
///
/// Every child started afterwards (``ChildProcess``, pool workers, the Manager's and queues'
/// helpers) finds the type by name and calls ``setUp()`` before its task, so its spans join
/// the parent's traces and its records go where the parent's do. Like a task type, it must be
/// visible by name (internal or public, not private or local).
///
/// Children started with ``StartMethod/fork`` are copies of the running parent, bootstraps
/// included: they skip the setup (bootstrapping twice traps). When the parent asks for the
/// child's log records (``ChildProcess/forwardsLogs``), the library has bootstrapped the child's
/// `LoggingSystem` with a ``ParentLogHandler`` before ``setUp()`` runs: leave logging alone in
/// it then.
public protocol ChildSetup {
    /// Runs in each child, once, before its task. Runs on the child's main thread with nothing
    /// else of the library running yet: keep it short and do not start children here.
    static func setUp()
}

extension CurrentProcess {
    /// Makes every child started from now on run `setup` before its task (see ``ChildSetup``);
    /// `nil` stops it.
    ///
    /// - Throws: ``ProcessError/unsupportedTaskType(typeName:reason:)`` when a child could not
    ///   find `setup` by name (a private or local type).
    public static func setChildSetup(_ setup: (any ChildSetup.Type)?) throws(ProcessError) {
        guard let setup else {
            ChildObservation.setupTypeName.withLock { $0 = nil }
            return
        }
        let name = try TypeIdentity.name(of: setup).get()
        ChildObservation.setupTypeName.withLock { $0 = name }
    }
}

/// What a launch tells the child about observing it: the setup to run, whether its log records
/// go to the parent (then the launch frame's last descriptor, before a captured stdout's pipe,
/// is the record socket), and the trace context its task runs in. `nil` in a launch when there
/// is none of these.
struct LaunchObservation: Codable, Sendable {
    var setupType: String?
    /// The parent logger's level when records are forwarded: the child drops those below it.
    var forwardedLevel: Logger.Level?
    var traceContext: [String: String]?
}

/// The child's side of ``LaunchObservation``.
enum ChildObservation {
    /// The type registered with ``CurrentProcess/setChildSetup(_:)``, by name.
    static let setupTypeName = Mutex<String?>(nil)

    /// The context the task runs in: set before the task starts, read only after.
    nonisolated(unsafe) private static var taskContext: ServiceContext?

    /// Applies what the launch asked for, before the task is decoded: takes the record socket
    /// from `descriptors`, bootstraps logging to it, runs the registered setup and keeps the
    /// trace context. `forked`: a copy of the parent made by `fork`, which has the parent's
    /// bootstraps already.
    static func enter(_ observation: LaunchObservation?, descriptors: inout [Int32], forked: Bool) {
        guard let observation else { return }
        if let level = observation.forwardedLevel, let fd = descriptors.popLast() {
            if forked {
                Syscall.close(fd)  // Bootstrapping again would trap: its records stay local.
            } else {
                ParentLogHandler.connect(fd: fd, level: level)
                LoggingSystem.bootstrap { label in ParentLogHandler(label: label) }
            }
        }
        if !forked, let name = observation.setupType,
            let setup = TypeIdentity.resolve(name) as? any ChildSetup.Type
        {
            setup.setUp()
        }
        if let carrier = observation.traceContext {
            taskContext = TaskTrace.extract(carrier)
        }
    }

    /// Runs the task in the context it was started in.
    static func running<T>(_ body: () async throws -> T) async throws -> T {
        guard let context = taskContext else { return try await body() }
        return try await ServiceContext.withValue(context) { try await body() }
    }

    /// What a parent sends: `nil` when it asks for nothing.
    static func launch(forwardedLevel: Logger.Level?, trace: TaskTrace?) -> LaunchObservation? {
        let setup = setupTypeName.withLock { $0 }
        guard setup != nil || forwardedLevel != nil || trace != nil else { return nil }
        return LaunchObservation(
            setupType: setup, forwardedLevel: forwardedLevel, traceContext: trace?.carrier)
    }
}
