import Logging
import PostgresNIO

/// Where a cluster's queue lives and how its clients talk to it: a PostgreSQL connection and the
/// schema that holds the queue's tables.
///
/// ```swift
/// let configuration = try ClusterConfiguration(url: "postgres://app@db.internal:5432/jobs")
/// ```
///
/// Producers (``ClusterPool``), workers (``ClusterWorker``) and ``ClusterAdmin`` that share a
/// database and a ``schema`` share one queue. Each creates or upgrades the schema on start
/// (versioned migrations, serialised by an advisory lock, so any number may start at once).
public struct ClusterConfiguration: Sendable {
    /// The postgres-nio client configuration.
    public var connection: PostgresClient.Configuration
    /// The schema that holds the queue's tables: lowercase letters, digits and `_`, starting
    /// with a letter or `_`, at most 40 characters. Default `"multiprocessing"`.
    public var schema: String
    /// How often waiting parties look at the tables when no notification came: producers for
    /// results, idle workers for work. Notifications (`LISTEN/NOTIFY`) make this a fallback.
    public var pollInterval: Duration = .seconds(1)
    /// The first pause before a failed database operation is tried again; it doubles up to
    /// ``maximumReconnectDelay``.
    public var reconnectDelay: Duration = .milliseconds(50)
    /// The longest pause between two tries of a failed database operation.
    public var maximumReconnectDelay: Duration = .seconds(2)
    /// How long an operation keeps trying through connection loss before it fails with
    /// ``ClusterError/database(_:)``. Default: five minutes.
    public var reconnectTimeout: Duration = .seconds(300)
    /// How long one try of a database operation may take before it is given up and tried
    /// again, like a lost connection. A guard against a request that never ends (a half-open
    /// connection; after a server restart, postgres-nio 1.33 can leave one suspended for ever);
    /// keep it above the slowest statement (a large batch insert or result read). Default: 30 s.
    public var operationTimeout: Duration = .seconds(30)
    /// Where producers, workers and admins log the cluster's events, with `task`, `task.name`,
    /// `attempt`, `queue` and `worker` metadata: a worker started or stopped (`info`), tasks
    /// claimed (`debug`), an attempt that failed (`notice`), a payload that does not decode
    /// (`error`), expired leases rescued and tasks failed for want of a worker that knows their
    /// name (`warning`), a late outcome refused by the fence (`warning`), a database operation
    /// that failed and is tried again (`warning`). `nil` (the default): nothing is logged.
    /// The worker's local pool logs through its own `PoolOptions.logger`.
    public var logger: Logger?

    /// A configuration from a postgres-nio client configuration. Its connections get `schema`
    /// as their `search_path` (a `search_path` among its startup parameters is replaced): the
    /// statements on every task's path are prepared once per connection and name their tables
    /// without the schema.
    public init(_ connection: PostgresClient.Configuration, schema: String = "multiprocessing")
        throws(ClusterError)
    {
        try Self.validate(schema: schema)
        self.connection = connection
        self.schema = schema
    }

    /// A configuration from a connection URL:
    /// `postgres://user:password@host:port/database?sslmode=disable`.
    ///
    /// `sslmode` may be `disable` (the default for loopback hosts), `prefer` (the default
    /// otherwise) or `require`. Percent-escapes in the user, password and database are decoded.
    public init(url: String, schema: String = "multiprocessing") throws(ClusterError) {
        try self.init(Self.parse(url: url), schema: schema)
    }

    /// The channel of `LISTEN/NOTIFY` wake-ups for this schema.
    var channel: String { "multiprocessing_\(schema)" }

    static func validate(schema: String) throws(ClusterError) {
        let bytes = Array(schema.utf8)
        let valid =
            !bytes.isEmpty && bytes.count <= 40
            && bytes.allSatisfy { ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 95 }
            && !(bytes[0] >= 48 && bytes[0] <= 57)
        guard valid else {
            throw .invalidConfiguration(
                "schema name '\(schema)': use lowercase letters, digits and _, at most 40, not starting with a digit"
            )
        }
    }

    static func parse(url: String) throws(ClusterError) -> PostgresClient.Configuration {
        func fail(_ why: String) -> ClusterError { .invalidConfiguration("connection URL: \(why)") }
        var rest = Substring(url)
        guard let schemeEnd = rest.range(of: "://") else { throw fail("no scheme (postgres://...)") }
        let scheme = rest[..<schemeEnd.lowerBound]
        guard scheme == "postgres" || scheme == "postgresql" else {
            throw fail("scheme '\(scheme)' is not postgres or postgresql")
        }
        rest = rest[schemeEnd.upperBound...]
        var query: Substring = ""
        if let mark = rest.firstIndex(of: "?") {
            query = rest[rest.index(after: mark)...]
            rest = rest[..<mark]
        }
        var path: Substring = ""
        if let slash = rest.firstIndex(of: "/") {
            path = rest[rest.index(after: slash)...]
            rest = rest[..<slash]
        }
        var user = "postgres"
        var password: String?
        if let at = rest.lastIndex(of: "@") {
            let credentials = rest[..<at]
            rest = rest[rest.index(after: at)...]
            if let colon = credentials.firstIndex(of: ":") {
                user = try percentDecoded(credentials[..<colon])
                password = try percentDecoded(credentials[credentials.index(after: colon)...])
            } else {
                user = try percentDecoded(credentials)
            }
        }
        var host = String(rest)
        var port = 5432
        if rest.hasPrefix("[") {  // [::1]:5432
            guard let close = rest.firstIndex(of: "]") else { throw fail("unclosed [ in the host") }
            host = String(rest[rest.index(after: rest.startIndex)..<close])
            let after = rest[rest.index(after: close)...]
            if after.hasPrefix(":") {
                guard let value = Int(after.dropFirst()) else {
                    throw fail("bad port '\(after.dropFirst())'")
                }
                port = value
            }
        } else if let colon = rest.lastIndex(of: ":") {
            host = String(rest[..<colon])
            guard let value = Int(rest[rest.index(after: colon)...]) else {
                throw fail("bad port '\(rest[rest.index(after: colon)...])'")
            }
            port = value
        }
        if host.isEmpty { host = "127.0.0.1" }
        let database = path.isEmpty ? nil : try percentDecoded(path)
        let loopback = host == "127.0.0.1" || host == "localhost" || host == "::1"
        var tls: PostgresClient.Configuration.TLS = loopback ? .disable : .prefer(.makeClientConfiguration())
        for pair in query.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1)
            guard parts.count == 2, parts[0] == "sslmode" else { continue }
            switch parts[1] {
            case "disable": tls = .disable
            case "prefer", "allow": tls = .prefer(.makeClientConfiguration())
            case "require", "verify-ca", "verify-full": tls = .require(.makeClientConfiguration())
            default: throw fail("sslmode '\(parts[1])'")
            }
        }
        return PostgresClient.Configuration(
            host: host, port: port, username: user, password: password, database: database, tls: tls)
    }

    private static func percentDecoded(_ text: Substring) throws(ClusterError) -> String {
        var bytes: [UInt8] = []
        var iterator = Array(text.utf8).makeIterator()
        func hex(_ byte: UInt8?) -> UInt8? {
            guard let byte else { return nil }
            switch byte {
            case 48...57: return byte - 48
            case 65...70: return byte - 55
            case 97...102: return byte - 87
            default: return nil
            }
        }
        while let byte = iterator.next() {
            if byte == 37 {  // %
                guard let high = hex(iterator.next()), let low = hex(iterator.next()) else {
                    throw .invalidConfiguration("connection URL: bad percent-escape in '\(text)'")
                }
                bytes.append(high << 4 | low)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
