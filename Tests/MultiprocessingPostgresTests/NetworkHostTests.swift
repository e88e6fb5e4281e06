import Multiprocessing
import MultiprocessingPostgres
import Testing

#if canImport(Glibc)
    import Glibc
#endif

extension ClusterTests {
    /// Worker hosts that reach the database over a real network path: each in a network
    /// namespace of its own, linked by veth, running `mp-cluster-demo worker` — another program
    /// than the producer's, which knows the task only by its queue name.
    @Suite("worker hosts across a network")
    struct NetworkHostTests {
        @Test(
            "two hosts behind veth links serve a map; one is cut off mid-map and the map still ends, each result once"
        )
        func partition() async throws {
            _ = try NetworkHost.requirements()
            let configuration = try await TestDatabase.configuration("nethosts")
            defer { Task { await TestDatabase.drop(configuration) } }
            let url = try await TestDatabase.url()
            guard let portText = url.split(separator: ":").last?.split(separator: "/").first,
                let port = UInt16(portText)
            else { throw TestSetupError("no port in \(url)") }
            let log = RunLog("nethosts")
            defer { unlink(log.path) }
            let blocks = 48
            let blockSize = 20_000

            var hosts: [NetworkHost] = []
            do {
                for index in 0..<2 {
                    hosts.append(
                        try await NetworkHost.start(
                            index: index, schema: configuration.schema, databasePort: port))
                }
                try await withClusterAdmin(configuration: configuration) { admin in
                    // Both registered: each made its round trips through its own link.
                    let registered = try await eventually(.seconds(60)) {
                        let live = try await admin.workers().filter(\.isLive).map(\.pid)
                        return hosts.allSatisfy { live.contains($0.worker) }
                    }
                    #expect(registered, "workers: \(hosts.map(\.printed))")
                    guard registered else { return }

                    var options = ClusterTaskOptions(queue: "cluster-demo")
                    options.maxAttempts = 5
                    let cutOff = hosts[1]
                    let results = try await withClusterPool(configuration: configuration, defaults: options) {
                        pool in
                        try await withThrowingTaskGroup(of: Void.self) { group in
                            group.addTask {
                                // A quarter in: take host 1's link down for the rest of the map.
                                _ = try await eventually(.seconds(120)) {
                                    let done =
                                        try await admin.queues().first { $0.name == "cluster-demo" }?
                                        .counts[.succeeded] ?? 0
                                    return done >= blocks / 4
                                }
                                try await cutOff.setConnected(false)
                            }
                            let results = try await pool.mapResults(
                                RemoteCountPrimes(blockSize: blockSize, log: log.path), over: 0..<blocks,
                                chunkSize: 1)
                            try await group.waitForAll()
                            return results
                        }
                    }

                    // Every block once, right, and the queue holds one success per task.
                    let answers = results.compactMap { try? $0.get() }
                    #expect(answers.count == blocks, "failures: \(results.filter { (try? $0.get()) == nil })")
                    #expect(answers.map(\.block) == Array(0..<blocks))
                    let expected = (0..<blocks).map { block in
                        (block * blockSize..<(block + 1) * blockSize).filter(isPrime).count
                    }
                    #expect(answers.map(\.primes) == expected)
                    let counts = try await admin.queues().first { $0.name == "cluster-demo" }?.counts
                    #expect(counts?[.succeeded] == blocks)
                    // The host that stayed connected answered after the cut: it took over.
                    #expect(answers.contains { $0.worker == hosts[0].worker })
                    let ran = Set(log.lines.map(\.input))
                    #expect(ran == Set(0..<blocks))
                }

                // Joined again, the cut-off host comes back to a graceful stop; the other too.
                try await hosts[1].setConnected(true)
                for host in hosts {
                    let status = await host.stopWorker(SIGTERM, within: .seconds(60))
                    #expect(
                        status == 0, "\(host.name) ended with \(String(describing: status)): \(host.printed)")
                }
                // What the two recorded adds up to the map, whatever the cut-off one ran twice:
                // its late answers, if any, were refused (each host prints its statistics).
                let recorded = hosts.map { Self.statistic("recorded", in: $0.printed) }
                #expect(recorded.reduce(0) { $0 + ($1 ?? 0) } == blocks, "\(hosts.map(\.printed))")
                #expect(recorded.allSatisfy { $0 != nil })
            } catch {
                for host in hosts { await host.tearDown() }
                throw error
            }
            for host in hosts { await host.tearDown() }
        }

        /// `7` from `"... recorded 7, ..."` in a demo worker's last line.
        static func statistic(_ name: String, in output: String) -> Int? {
            guard let range = output.range(of: "\(name) ") else { return nil }
            return Int(output[range.upperBound...].prefix { $0.isNumber })
        }
    }
}

private func isPrime(_ n: Int) -> Bool {
    if n < 2 { return false }
    if n < 4 { return true }
    if n % 2 == 0 { return false }
    var d = 3
    while d * d <= n {
        if n % d == 0 { return false }
        d += 2
    }
    return true
}
