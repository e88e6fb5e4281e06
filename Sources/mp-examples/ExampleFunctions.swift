import Multiprocessing

#if canImport(Glibc)
    import Glibc
#endif

/// The seeds' `task(x)`: square a number after a moment's work.
struct SquareSlowly: ProcessFunction {
    var delay: Duration = .milliseconds(100)
    func callAsFunction(_ x: Int) async throws -> Int {
        try await Task.sleep(for: delay)
        return x * x
    }
}

/// A zero-argument task for `pool.submit`: counts down and says who did it.
struct Countdown: ProcessTask {
    var from: Int
    func run() async throws -> String {
        "\(Array((0...from).reversed())) from \(CurrentProcess.name)"
    }
}

/// Fetches one page and returns its title and links.
struct FetchPage: ProcessFunction {
    var port: UInt16
    struct Page: Codable, Sendable {
        var path: String
        var title: String
        var links: [String]
        var worker: Int32
    }

    func callAsFunction(_ path: String) async throws -> Page {
        let (status, body) = try LoopbackSite.get(port: port, path: path)
        guard status == 200 else { throw CrawlError.notFound(path) }
        let title =
            body.components(separatedBy: "<title>").dropFirst().first?.components(separatedBy: "</title>")
            .first ?? "?"
        let links = body.components(separatedBy: "href=\"").dropFirst().compactMap {
            $0.components(separatedBy: "\"").first
        }
        return Page(path: path, title: title, links: links, worker: getpid())
    }
}

/// The seeds' "wrap the work in try/except and return a marker" example: here the function
/// simply throws, and each failure comes back as a typed value in the results.
struct ParseRecord: ProcessFunction {
    enum Failure: Error, Codable, Equatable {
        case notANumber(String)
        case negative(Int)
    }
    func callAsFunction(_ record: String) async throws -> Int {
        guard let value = Int(record) else { throw Failure.notANumber(record) }
        guard value >= 0 else { throw Failure.negative(value) }
        return value * 2
    }
}
