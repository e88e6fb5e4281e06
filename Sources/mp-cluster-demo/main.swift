import Multiprocessing
import MultiprocessingPostgres

#if canImport(Glibc)
    import Glibc
#endif

// mp-cluster-demo: issue 11's demo, a producer and two workers as separate programs on one
// PostgreSQL queue; the producer SIGKILLs a worker halfway and checks every result arrived
// exactly once. Scripts/cluster-demo.sh runs the whole of it:
//
//   mp-cluster-demo worker NAME [--concurrency N] [--schema NAME]
//   mp-cluster-demo producer --kill PID [--blocks N] [--block-size N] [--schema NAME]
//
// Both read the database from MP_POSTGRES_URL. The tests run the worker in network namespaces,
// each on a schema of its own.

/// Prints and flushes, so that the programs' lines interleave in order in a terminal or a pipe.
func say(_ line: String) {
    print(line)
    fflush(nil)
}

/// What the producer and the workers agree on.
enum DemoSettings {
    static let schema = "cluster_demo"
    static let queue = "cluster-demo"
    static let lease: Duration = .seconds(2)
}

/// Writes `text` to standard error.
func complain(_ text: String) {
    let bytes = Array(text.utf8)
    _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
}

func usage() -> Never {
    let text = """
        usage: mp-cluster-demo worker NAME [--concurrency N] [--schema NAME]
               mp-cluster-demo producer --kill PID [--blocks N] [--block-size N] [--schema NAME]
        (MP_POSTGRES_URL names the database; Scripts/cluster-demo.sh runs the whole demo)

        """
    complain(text)
    exit(64)
}

/// The value after `flag`, as an integer, or `fallback`.
func integer(_ flag: String, in arguments: [String], default fallback: Int?) -> Int {
    guard let index = arguments.firstIndex(of: flag) else {
        guard let fallback else { usage() }
        return fallback
    }
    guard index + 1 < arguments.count, let value = Int(arguments[index + 1]), value > 0 else { usage() }
    return value
}

/// The value after `flag`, or `fallback`.
func text(_ flag: String, in arguments: [String], default fallback: String) -> String {
    guard let index = arguments.firstIndex(of: flag) else { return fallback }
    guard index + 1 < arguments.count, !arguments[index + 1].isEmpty else { usage() }
    return arguments[index + 1]
}

let arguments = Array(CommandLine.arguments.dropFirst())
guard let url = getenv("MP_POSTGRES_URL").map({ String(cString: $0) }), !url.isEmpty else {
    complain("mp-cluster-demo: set MP_POSTGRES_URL (Scripts/cluster-demo.sh starts a PostgreSQL for you)\n")
    exit(64)
}
do {
    let configuration = try ClusterConfiguration(
        url: url, schema: text("--schema", in: arguments, default: DemoSettings.schema))
    switch arguments.first {
    case "worker":
        guard arguments.count >= 2 else { usage() }
        try await DemoWorker.run(
            name: arguments[1], configuration: configuration,
            concurrency: integer("--concurrency", in: arguments, default: 1))
    case "producer":
        let passed = try await DemoProducer(
            configuration: configuration, victim: Int32(integer("--kill", in: arguments, default: nil)),
            blocks: integer("--blocks", in: arguments, default: 160),
            blockSize: integer("--block-size", in: arguments, default: 100_000)
        ).run()
        exit(passed ? 0 : 1)
    default:
        usage()
    }
} catch {
    complain("mp-cluster-demo: \(error)\n")
    exit(1)
}
