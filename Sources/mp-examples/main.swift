import Multiprocessing

#if canImport(Glibc)
    import Glibc
#endif

// mp-examples: the seeds' Pool programs in Swift. `swift run -c release mp-examples <name>`,
// or no name for all of them.

func say(_ line: String) {
    print(line)
    fflush(nil)
}

typealias Example = (name: String, title: String, run: @Sendable () async throws -> Void)

let poolExamples: [Example] = [
    (
        "pool-apply", "apply and submit (apply_async)",
        {
            try await withProcessPool(workers: 2) { pool in
                say("apply(square, 5) = \(try await pool.apply(SquareSlowly(), 5))")
                let futures = try (0..<4).map { try pool.submit(SquareSlowly(), $0) }
                say("submitted 4 tasks; done yet? \(futures.map(\.isDone))")
                var results: [Int] = []
                for future in futures { results.append(try await future.value) }
                say("results \(results)")
                // A zero-argument task, its arguments in its properties: apply_async(f, (q,)).
                say("a ProcessTask in a worker: \(try await pool.submit(Countdown(from: 3)).value)")
            }
        }
    ),
    (
        "pool-map", "map over a range, on every CPU",
        {
            try await withProcessPool(workers: .cpuCount) { pool in
                let squares = try await pool.map(SquareSlowly(delay: .milliseconds(10)), over: 0..<20)
                say("map: \(squares)")
            }
        }
    ),
    (
        "pool-map-timeout", "map_async with a timeout",
        {
            try await withProcessPool(workers: 2) { pool in
                // CPython: map_async(f, inputs).get(timeout=0.5).
                let slow = try pool.submitMap(SquareSlowly(delay: .seconds(1)), over: 0..<8, chunkSize: 1)
                let fast = try pool.submitMap(SquareSlowly(delay: .milliseconds(10)), over: 0..<8)
                do {
                    say("slow map within 500 ms: \(try await slow.value(timeout: .milliseconds(500)))")
                } catch PoolError.resultTimedOut {
                    // The map goes on after a timed-out wait, as CPython's does; stop it here.
                    slow.cancel()
                    say("slow map within 500 ms: timed out (cancelled)")
                }
                say("fast map: \(try await fast.value(timeout: .seconds(30)))")
            }
        }
    ),
    (
        "crawler", "a crawler on a pool, against a server on 127.0.0.1",
        {
            let port = LoopbackSite.start()
            say("serving a small site on 127.0.0.1:\(port)")
            try await withProcessPool(workers: 4) { pool in
                var seen: Set<String> = ["/"]
                var frontier = ["/"]
                var depth = 0
                while !frontier.isEmpty {
                    let results = try await pool.mapResults(
                        FetchPage(port: port), over: frontier, chunkSize: 1)
                    var next: [String] = []
                    for (path, result) in zip(frontier, results) {
                        switch result {
                        case .success(let page):
                            say("  [depth \(depth)] \(path) — \"\(page.title)\" (worker \(page.worker))")
                            for link in page.links where !seen.contains(link) {
                                seen.insert(link)
                                next.append(link)
                            }
                        case .failure(let error):
                            say("  [depth \(depth)] \(path) — failed: \(error)")
                        }
                    }
                    frontier = next
                    depth += 1
                }
                say("crawled \(seen.count) pages")
            }
        }
    ),
    (
        "typed-errors", "failures as typed values instead of try/except markers",
        {
            try await withProcessPool(workers: 2) { pool in
                let records = ["10", "x", "7", "-3", "5"]
                let results = try await pool.mapResults(ParseRecord(), over: records)
                for (record, result) in zip(records, results) {
                    switch result {
                    case .success(let value): say("  \(record) -> \(value)")
                    case .failure(let error as ParseRecord.Failure): say("  \(record) -> rejected: \(error)")
                    case .failure(let error): say("  \(record) -> failed: \(error)")
                    }
                }
            }
        }
    ),
]

// Each area adds its examples in a file of its own.
let examples =
    poolExamples + childExamples + sharedExamples + queueExamples + managerExamples + crashExamples
    + sandboxExamples

let wanted = CommandLine.arguments.dropFirst().first
for (name, title, run) in examples where wanted == nil || wanted == name {
    say("== \(name): \(title)")
    try await run()
    say("")
}
if let wanted, !examples.contains(where: { $0.0 == wanted }) {
    say("unknown example \(wanted); choose from: \(examples.map(\.0).joined(separator: ", "))")
    exit(2)
}
