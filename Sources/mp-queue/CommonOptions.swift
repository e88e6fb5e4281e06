import ArgumentParser
import MultiprocessingPostgres

#if canImport(Glibc)
    import Glibc
#endif

/// The options every command takes: where the queue is, and how to print.
struct CommonOptions: ParsableArguments {
    @Option(
        help: "The connection URL (postgres://user:password@host:port/database). Default: $MP_POSTGRES_URL.")
    var url: String?

    @Option(help: "The schema that holds the queue's tables.")
    var schema = "multiprocessing"

    @Option(help: "How long to keep trying to reach the database, e.g. 10s, 2m.")
    var timeout = TimeSpan(.seconds(10))

    @Flag(help: "Print one JSON object, for programs.")
    var json = false

    /// The queue's configuration.
    func configuration() throws -> ClusterConfiguration {
        var text = url
        if text == nil, let value = getenv("MP_POSTGRES_URL"), value.pointee != 0 {
            text = String(cString: value)
        }
        guard let text else {
            throw ValidationError("no database: pass --url or set MP_POSTGRES_URL")
        }
        var configuration = try ClusterConfiguration(url: text, schema: schema)
        configuration.reconnectTimeout = timeout.duration
        configuration.maximumReconnectDelay = .milliseconds(500)
        return configuration
    }

    /// Runs `body` with a connected admin. Errors of the queue become the tool's error message.
    func withAdmin<T: Sendable>(_ body: @escaping @Sendable (ClusterAdmin) async throws -> T) async throws
        -> T
    {
        let configuration = try self.configuration()
        let server =
            "\(configuration.connection.host ?? "?"):\(configuration.connection.port.map(String.init) ?? "?")"
        // postgres-nio's pool keeps a first connection attempt waiting for about a minute,
        // whatever the reconnect time-out says: bound the whole command by --timeout (plus
        // the time the command's own statements may take).
        let limit = timeout.duration + .seconds(5)
        do {
            return try await withThrowingTaskGroup(of: T?.self) { group in
                group.addTask {
                    try await withClusterAdmin(configuration: configuration) { admin in try await body(admin)
                    }
                }
                group.addTask {
                    try await Task.sleep(for: limit)
                    return nil
                }
                defer { group.cancelAll() }
                guard let first = try await group.next(), let value = first else {
                    throw ToolError("database at \(server): no answer within \(format(limit))")
                }
                return value
            }
        } catch ClusterError.database(let why) {
            throw ToolError("database at \(server) (tried for \(format(timeout.duration))): \(why)")
        } catch let error as ClusterError {
            throw ToolError(error.description)
        }
    }
}

/// A failure the tool reports in one sentence (exit status 1).
struct ToolError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
