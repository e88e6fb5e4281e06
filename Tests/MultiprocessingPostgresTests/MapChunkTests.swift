import Multiprocessing
import Synchronization
import Testing

@testable import MultiprocessingPostgres

#if canImport(Glibc)
    import Glibc
#endif

extension ClusterTests {
    @Suite("maps in chunks")
    struct MapChunkTests {
        /// Rows of the queue: how many, and their task names.
        private func rows(_ configuration: ClusterConfiguration) async throws -> [String] {
            try await TestDatabase.query(
                "SELECT task_name || ' ' || count(*) FROM \(configuration.schema).tasks GROUP BY task_name ORDER BY 1"
            )
        }

        private func clear(_ configuration: ClusterConfiguration) async throws {
            #expect(try await TestDatabase.psql("DELETE FROM \(configuration.schema).tasks") == 0)
        }

        @Test(
            "a map travels in chunks: fewer rows, every result in order; the automatic size and the byte limit"
        )
        func chunks() async throws {
            let configuration = try await TestDatabase.configuration("chunks")
            defer { Task { await TestDatabase.drop(configuration) } }
            try await withWorker(configuration, options: testWorkerOptions(concurrency: 2)) {
                (_: ClusterWorker) async throws in
                try await withClusterPool(configuration: configuration) { (pool: ClusterPool) async throws in
                    let squares = try await pool.map(CSquare(), over: 0..<1000, chunkSize: 50)
                    #expect(squares == (0..<1000).map { $0 * $0 })
                    let name = clusterTaskName(of: CSquare.self)
                    #expect(try await rows(configuration) == ["\(name)[] 20"])

                    // Automatic: two live slots, so 1000 / 8 capped at 64 items: 16 chunks.
                    try await clear(configuration)
                    let seen = Atomic<Int>(0)
                    let again = try await pool.map(CSquare(), over: 0..<1000) { progress in
                        seen.store(progress.completed, ordering: .relaxed)
                    }
                    #expect(again == squares)
                    #expect(seen.load(ordering: .relaxed) == 1000)
                    #expect(try await rows(configuration) == ["\(name)[] 16"])

                    // Few items: one task each, as before chunks existed.
                    try await clear(configuration)
                    #expect(try await pool.map(CSquare(), over: 0..<8) == (0..<8).map { $0 * $0 })
                    #expect(try await rows(configuration) == ["\(name) 8"])

                    // 40 KiB inputs: a chunk stops at 64 KiB, so each goes alone.
                    try await clear(configuration)
                    let large = (0..<4).map {
                        String(repeating: Character(UnicodeScalar(97 + $0)!), count: 40_000)
                    }
                    #expect(
                        try await pool.map(Shout(), over: large, chunkSize: 64)
                            == large.map { $0.uppercased() })
                    #expect(try await rows(configuration) == ["tests.shout.v1[] 4"])
                }
            }
        }

        @Test("a failing item fails its chunk's attempt; after the last one every item has its own outcome")
        func failures() async throws {
            let configuration = try await TestDatabase.configuration("chunkfail")
            defer { Task { await TestDatabase.drop(configuration) } }
            try await withWorker(configuration) { (_: ClusterWorker) async throws in
                try await withClusterPool(configuration: configuration) { (pool: ClusterPool) async throws in
                    var two = ClusterTaskOptions()
                    two.maxAttempts = 2
                    let results = try await pool.mapResults(
                        FailOdd(), over: 0..<10, chunkSize: 5, options: two)
                    for (x, result) in results.enumerated() {
                        if x % 2 == 0 {
                            #expect(try result.get() == x)
                        } else {
                            #expect(throws: CodableFailure(code: x, reason: "odd")) { try result.get() }
                        }
                    }
                    #expect(
                        try await TestDatabase.query(
                            "SELECT state || ' ' || attempt FROM \(configuration.schema).tasks ORDER BY id")
                            == ["failed 2", "failed 2"])

                    // map fails fast with the first failing item's error.
                    await #expect(throws: CodableFailure.self) {
                        try await pool.map(FailOdd(), over: 0..<10, chunkSize: 5, options: two)
                    }

                    // A crash in a chunk: every item of it fails with the crash, the worker goes on.
                    var once = ClusterTaskOptions()
                    once.maxAttempts = 1
                    let crashed = try await pool.mapResults(
                        AlwaysTrap(), over: [1, 2, 3], chunkSize: 3, options: once)
                    #expect(crashed.count == 3)
                    for result in crashed {
                        #expect {
                            try result.get()
                        } throws: { error in
                            guard case PoolError.workerLost = error else { return false }
                            return true
                        }
                    }
                    #expect(
                        try await pool.map(CSquare(), over: 0..<40, chunkSize: 10) == (0..<40).map { $0 * $0 }
                    )
                }
            }
        }

        @Test(
            "a last attempt that ends without outcomes (a time-out) gives every item its error, not an earlier attempt's"
        )
        func lastAttemptWithoutOutcomes() async throws {
            let configuration = try await TestDatabase.configuration("chunklast")
            defer { Task { await TestDatabase.drop(configuration) } }
            let marker = "/tmp/mp-chunk-marker-\(getpid())"
            unlink(marker)
            defer { unlink(marker) }
            try await withWorker(configuration) { (_: ClusterWorker) async throws in
                try await withClusterPool(configuration: configuration) { (pool: ClusterPool) async throws in
                    var options = ClusterTaskOptions()
                    options.maxAttempts = 2
                    // Long enough for a first attempt on a stalled machine to reach item 1.
                    options.timeout = .seconds(8)
                    let results = try await pool.mapResults(
                        ThrowsThenHangs(marker: marker), over: [0, 1, 2], chunkSize: 3, options: options)
                    for result in results {
                        #expect {
                            try result.get()
                        } throws: { error in
                            guard case PoolError.timedOut = error else { return false }
                            return true
                        }
                    }
                    #expect(
                        try await TestDatabase.query(
                            "SELECT state || ' ' || attempt || ' ' || (result IS NULL) FROM \(configuration.schema).tasks"
                        )
                            == ["failed 2 true"])
                }
            }
        }

        @Test("a corrupt chunk row fails each of its items with undecodablePayload, not retried")
        func corruptChunk() async throws {
            let configuration = try await TestDatabase.configuration("chunkcorrupt")
            defer { Task { await TestDatabase.drop(configuration) } }
            try await withClusterPool(configuration: configuration) { (pool: ClusterPool) async throws in
                var later = ClusterTaskOptions()
                later.runAfter = .seconds(3600)
                let map = Task {
                    try await pool.mapResults(CSquare(), over: 0..<6, chunkSize: 3, options: later)
                }
                #expect(
                    try await eventually {
                        // The schema exists once the pool has migrated: until then the query fails.
                        (try? await TestDatabase.query("SELECT count(*) FROM \(configuration.schema).tasks"))
                            == ["2"]
                    })
                // The first chunk's second item is garbage; the second chunk is intact.
                let garbage = try BinaryEncoder().encode([
                    try BinaryEncoder().encode(0), [0xde, 0xad, 0xbe, 0xef, 0xff, 0xff, 0xff, 0xff, 0xff],
                    try BinaryEncoder().encode(2),
                ])
                let hex = garbage.map {
                    String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16)
                }
                .joined()
                #expect(
                    try await TestDatabase.psql(
                        """
                        UPDATE \(configuration.schema).tasks SET input = '\\x\(hex)' WHERE batch_index = 0;
                        UPDATE \(configuration.schema).tasks SET run_after = now()
                        """) == 0)
                try await withWorker(configuration) { (_: ClusterWorker) async throws in
                    let results = try await map.value
                    for result in results.prefix(3) {
                        #expect {
                            try result.get()
                        } throws: { error in
                            guard case ClusterError.undecodablePayload(_, let name, let reason) = error else {
                                return false
                            }
                            return name == clusterChunkName(of: CSquare.self) && reason.contains("item 1")
                        }
                    }
                    #expect(try results.suffix(3).map { try $0.get() } == [9, 16, 25])
                }
                #expect(
                    try await TestDatabase.query(
                        "SELECT state || ' ' || attempt FROM \(configuration.schema).tasks ORDER BY batch_index"
                    )
                        == ["failed 1", "succeeded 1"])
            }
        }
    }
}

/// Item 1 throws on the chunk's first attempt (`marker` does not exist yet) and hangs on the
/// next; the other items return their input.
struct ThrowsThenHangs: ProcessFunction {
    var marker: String
    func callAsFunction(_ x: Int) async throws -> Int {
        guard x == 1 else { return x }
        let fd = open(marker, O_WRONLY | O_CREAT | O_EXCL, 0o644)
        if fd >= 0 {
            close(fd)
            throw CodableFailure(code: x, reason: "first attempt")
        }
        try await Task.sleep(for: .seconds(60))
        return x
    }
}

@Suite("map chunks: sizes, cuts and stored outcomes")
struct MapChunkUnitTests {
    @Test("CPython's rule over live slots, at most 64 items; one with no live worker")
    func automaticSize() {
        #expect(MapChunk.automaticSize(items: 20_000, slots: 2) == 64)
        #expect(MapChunk.automaticSize(items: 1000, slots: 100) == 3)
        #expect(MapChunk.automaticSize(items: 7, slots: 2) == 1)
        #expect(MapChunk.automaticSize(items: 100, slots: 1) == 25)
        #expect(MapChunk.automaticSize(items: 100_000, slots: 0) == 1)
    }

    @Test("chunks end at the size or the byte limit; an item larger than the limit goes alone")
    func ranges() {
        #expect(MapChunk.ranges(sizes: Array(repeating: 10, count: 10), size: 4) == [0..<4, 4..<8, 8..<10])
        let big = MapChunk.byteLimit
        #expect(MapChunk.ranges(sizes: [10, big, 10, 10], size: 64) == [0..<1, 1..<2, 2..<4])
        #expect(MapChunk.ranges(sizes: [big / 2, big / 2, 1], size: 64) == [0..<2, 2..<3])
        #expect(MapChunk.ranges(sizes: [], size: 3) == [])
    }

    @Test(
        "a stored result that does not decode, or has the wrong count, fails every item with undecodableResult"
    )
    func badResults() throws {
        func row(_ result: [UInt8]?, state: String = "succeeded") -> FinishedTask {
            FinishedTask(
                id: 7, state: state, result: result, error: nil, errorKind: nil, errorText: nil, attempt: 1,
                taskName: "x[]", unknownNameTimeout: 0)
        }
        func isUndecodable(_ result: Result<Int, any Error>) -> Bool {
            guard case .failure(ClusterError.undecodableResult(task: 7, _)) = result else { return false }
            return true
        }
        let garbage = MapChunk.outcomes(of: row([0xff, 0xff, 0xff, 0xff, 0xff]), count: 2, as: Int.self)
        #expect(garbage.count == 2 && garbage.allSatisfy(isUndecodable))
        let one = try BinaryEncoder().encode([MapChunk.Item.value(try BinaryEncoder().encode(5))])
        let short = MapChunk.outcomes(of: row(one), count: 2, as: Int.self)
        #expect(short.count == 2 && short.allSatisfy(isUndecodable))
        #expect(try MapChunk.outcomes(of: row(one), count: 1, as: Int.self).map { try $0.get() } == [5])
        // No stored outcomes: the row's own failure for each item.
        let lost = MapChunk.outcomes(
            of: FinishedTask(
                id: 7, state: "failed", result: nil, error: nil, errorKind: "lease_expired", errorText: nil,
                attempt: 3, taskName: "x[]", unknownNameTimeout: 0), count: 2, as: Int.self)
        for result in lost {
            #expect(throws: ClusterError.leaseExpired(task: 7, attempts: 3)) { try result.get() }
        }
        let cancelled = MapChunk.outcomes(of: row(one, state: "cancelled"), count: 1, as: Int.self)
        #expect(throws: PoolError.cancelled) { try cancelled[0].get() }
    }
}
