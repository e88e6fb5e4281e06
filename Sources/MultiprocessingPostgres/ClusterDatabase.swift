import PostgresNIO
import ServiceLifecycle

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// One party's connection to the queue: a postgres-nio client, its background task, and the
/// retry rule every statement goes through.
final class ClusterDatabase: Sendable {
    let configuration: ClusterConfiguration
    let client: PostgresClient
    let logger: Logger
    /// The user's logger for the cluster's events (``ClusterConfiguration/logger``).
    let events: Logger?
    /// `nil` when no metrics backend is bootstrapped.
    let metrics: ClusterMetrics?
    /// The schema name, for statements.
    var schema: String { configuration.schema }

    init(configuration: ClusterConfiguration, label: String) {
        self.configuration = configuration
        Self.survivesBrokenConnections
        var connection = configuration.connection
        connection.options.connectTimeout = .seconds(5)
        // The prepared statements on the task path (``WorkerStatements``) name their tables
        // without the schema.
        connection.options.additionalStartupParameters.removeAll { $0.0 == "search_path" }
        connection.options.additionalStartupParameters.append(("search_path", configuration.schema))
        client = PostgresClient(configuration: connection)
        logger = Logger(label: "multiprocessing.postgres.\(label)")
        events = configuration.logger
        metrics = ClusterMetrics.make()
    }

    /// SwiftNIO writes to its sockets with `writev`, which raises SIGPIPE when PostgreSQL went
    /// away mid-write (a restart, a killed backend); its default action would end the whole
    /// program, where the promise is a reconnect. So the first party ignores SIGPIPE, unless the
    /// program installed a handler of its own (left as it was). Children started with `.spawn` or
    /// `.forkserver` get the default action back.
    private static let survivesBrokenConnections: Void = {
        let previous = signal(SIGPIPE, SIG_IGN)
        // SIG_DFL is `nil` and SIG_IGN is 1: anything else is the program's own handler.
        if let previous, unsafeBitCast(previous, to: Int.self) != 1 { _ = signal(SIGPIPE, previous) }
    }()

    /// Starts the client's background work in a detached task, which inherits no graceful
    /// shutdown (postgres-nio's client would end at once on one, while its owner still needs the
    /// database to hand work back). The owner cancels the task last.
    func startClient() -> Task<Void, Never> {
        let client = self.client
        return Task.detached { await client.run() }
    }

    /// Creates or upgrades the schema (``ClusterSchema``), trying again through connection loss.
    func migrate() async throws {
        try await retrying("migrating the schema") {
            try await ClusterSchema.migrate(self.client, configuration: self.configuration)
        }
    }

    /// Runs `operation`, trying again with a growing pause while the failure is a lost
    /// connection, a server restarting or refusing connections, or a serialisation conflict,
    /// for up to the configured reconnect time-out. Every operation passed here must be safe
    /// to repeat: a statement whose connection broke may or may not have committed.
    func retrying<T: Sendable>(
        _ what: String, _ operation: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        try await retryingCounted(what) { _ in try await operation() }
    }

    /// ``retrying(_:_:)``, telling `operation` which try this is (1 for the first).
    func retryingCounted<T: Sendable>(
        _ what: String, _ operation: @escaping @Sendable (Int) async throws -> T
    ) async throws -> T {
        var attempt = 0
        let deadline = ContinuousClock.now + configuration.reconnectTimeout
        var pause = configuration.reconnectDelay
        while true {
            attempt += 1
            do {
                let attempt = attempt
                return try await Self.bounded(by: configuration.operationTimeout, what) {
                    try await operation(attempt)
                }
            } catch {
                guard Self.isTransient(error), ContinuousClock.now < deadline, !Task.isCancelled else {
                    if error is CancellationError || error is ClusterError { throw error }
                    throw ClusterError.database("\(what): \(Self.describe(error))")
                }
                logger.debug("\(what) failed, trying again", metadata: ["error": "\(Self.describe(error))"])
                // The first failure of an operation is worth a warning; its further tries are not.
                if attempt == 1 {
                    events?.warning(
                        "\(what) failed, trying again", metadata: ["error": "\(Self.describe(error))"])
                }
                try await Task.sleep(for: pause)
                pause = min(pause * 2, configuration.maximumReconnectDelay)
            }
        }
    }

    /// A try that took longer than ``ClusterConfiguration/operationTimeout``: tried again.
    struct OperationTimedOut: Error, CustomStringConvertible {
        var what: String
        var after: Duration
        var description: String { "\(what): no answer after \(after)" }
    }

    /// Runs `operation` in a task of its own and returns what it returns, unless `limit` passes
    /// or the caller is cancelled first: then the task is cancelled and left behind, not
    /// awaited, since a request postgres-nio never ends would otherwise hold the caller too.
    static func bounded<T: Sendable>(
        by limit: Duration, _ what: String, _ operation: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        let outcome = Gate<T>()
        let work = Task {
            do { outcome.open(.success(try await operation())) } catch { outcome.open(.failure(error)) }
        }
        let deadline = OperationDeadlines.shared.add(deadline: .now + limit) {
            outcome.open(.failure(OperationTimedOut(what: what, after: limit)))
        }
        defer { OperationDeadlines.shared.remove(deadline) }
        do {
            return try await outcome.value()
        } catch {
            work.cancel()
            throw error
        }
    }

    /// `true` for failures that another try may not meet.
    static func isTransient(_ error: any Error) -> Bool {
        if error is OperationTimedOut { return true }
        if error is CancellationError || error is ClusterError { return false }
        guard let error = error as? PSQLError else { return true }  // NIO's connection errors
        switch error.code {
        case .server:
            let state = error.serverInfo?[.sqlState] ?? ""
            // 08 connection exception, 57 operator intervention (shutdown, restart, starting
            // up), 53 insufficient resources (too many connections), 40 serialisation/deadlock.
            return ["08", "57", "53", "40"].contains { state.hasPrefix($0) }
        case .tooManyParameters, .poolClosed, .queryCancelled, .unsupportedAuthMechanism,
            .authMechanismRequiresPassword, .sslUnsupported:
            return false
        default:
            return true
        }
    }

    /// The server's message when there is one.
    static func describe(_ error: any Error) -> String {
        if let error = error as? PSQLError {
            if let message = error.serverInfo?[.message] {
                return "\(message) (\(error.serverInfo?[.sqlState] ?? "?"))"
            }
            return "\(error.code)"
        }
        return "\(error)"
    }
}

extension ByteBuffer {
    /// The readable bytes as an array.
    var bytes: [UInt8] { Array(readableBytesView) }
}

extension Array where Element == UInt8 {
    /// The bytes in a buffer, for binding as `bytea`.
    var buffer: ByteBuffer { ByteBuffer(bytes: self) }
}
