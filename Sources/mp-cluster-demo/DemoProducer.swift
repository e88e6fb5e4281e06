import Multiprocessing
import MultiprocessingPostgres
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The producer program: maps the prime count over the blocks on the cluster, SIGKILLs one
/// worker when half the results are in, and checks that every block's result arrived exactly
/// once and is right (against a local sieve).
struct DemoProducer {
    var configuration: ClusterConfiguration
    /// The worker to kill halfway.
    var victim: Int32
    var blocks: Int
    var blockSize: Int

    /// Runs the demo; `true` when every check passed.
    func run() async throws -> Bool {
        let log = "/tmp/mp-cluster-demo-\(CurrentProcess.pid).log"
        unlink(log)
        defer { unlink(log) }
        let expected = CountPrimes.sieve(blocks: blocks, blockSize: blockSize)
        say(
            "producer: pid \(CurrentProcess.pid); the primes below \(blocks * blockSize) in \(blocks) blocks of \(blockSize), on queue '\(DemoSettings.queue)'"
        )
        return try await withClusterAdmin(configuration: configuration) { admin in
            try await admin.purge(queue: DemoSettings.queue, states: Set(ClusterTaskState.allCases))
            let workers = try await waitForWorkers(admin)
            guard workers.contains(where: { $0.pid == victim }) else {
                say("producer: no live worker has pid \(victim) (live: \(workers.map(\.pid)))")
                return false
            }
            say(
                "producer: workers \(workers.map { "\($0.pid) on \($0.host)" }.joined(separator: ", ")) are live"
            )
            var options = ClusterTaskOptions(queue: DemoSettings.queue)
            options.maxAttempts = 3
            let start = ContinuousClock.now
            let (results, killedHolding) = try await withClusterPool(
                configuration: configuration, defaults: options
            ) {
                pool in
                try await withThrowingTaskGroup(of: Int?.self) { group in
                    group.addTask { try await killHalfway(admin) }
                    // A task per block: blocks are heavy, so one at a time balances the hosts
                    // best, and a killed host loses only the blocks it was running.
                    let results = try await pool.mapResults(
                        CountPrimes(blockSize: blockSize, log: log), over: 0..<blocks, chunkSize: 1,
                        progress: Self.progressPrinter(total: blocks))
                    let killedHolding = try await group.next() ?? nil
                    return (results, killedHolding)
                }
            }
            let elapsed = ContinuousClock.now - start
            let figures = try await admin.queues().first { $0.name == DemoSettings.queue }
            return check(
                results: results, expected: expected, executions: Self.executions(log, blocks: blocks),
                figures: figures, killedHolding: killedHolding, elapsed: elapsed)
        }
    }

    /// Waits (up to a minute) for two live workers on the demo's queue.
    private func waitForWorkers(_ admin: ClusterAdmin) async throws -> [ClusterWorkerFigures] {
        let deadline = ContinuousClock.now + .seconds(60)
        while true {
            let live = try await admin.workers().filter {
                $0.isLive && !$0.isStopping && $0.queues.contains(DemoSettings.queue)
            }
            if live.count >= 2 || ContinuousClock.now > deadline { return live }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    /// Once half the blocks succeeded: SIGKILL the victim. Returns how many tasks it held then.
    private func killHalfway(_ admin: ClusterAdmin) async throws -> Int? {
        while true {
            let succeeded =
                try await admin.queues().first { $0.name == DemoSettings.queue }?.counts[.succeeded] ?? 0
            if succeeded >= blocks / 2 { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        let held = try await admin.workers().first { $0.pid == victim }?.tasksHeld
        guard kill(victim, SIGKILL) == 0 else {
            say("producer: kill(\(victim), SIGKILL) failed: errno \(errno)")
            return nil
        }
        say("producer: half the blocks are done — SIGKILL worker \(victim), which holds \(held ?? 0) task(s)")
        return held ?? 0
    }

    /// Prints a line at every tenth of the map.
    private static func progressPrinter(total: Int) -> @Sendable (PoolProgress) -> Void {
        let printed = Mutex(0)
        return { progress in
            let tenth = progress.completed * 10 / max(1, total)
            let due = printed.withLock { last in
                guard tenth > last else { return false }
                last = tenth
                return true
            }
            if due { say("producer: \(progress.completed)/\(total) results") }
        }
    }

    /// How many times each block started running, from the workers' log lines.
    private static func executions(_ log: String, blocks: Int) -> [Int] {
        var counts = [Int](repeating: 0, count: blocks)
        let fd = open(log, O_RDONLY)
        guard fd >= 0 else { return counts }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = read(fd, &chunk, chunk.count)
            if count <= 0 { break }
            bytes += chunk[0..<count]
        }
        for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") {
            if let block = line.split(separator: " ").first.flatMap({ Int($0) }),
                counts.indices.contains(block)
            {
                counts[block] += 1
            }
        }
        return counts
    }

    /// `1.23`: seconds with two decimals.
    private static func seconds(_ duration: Duration) -> String {
        let hundredths =
            (duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000 + 5)
            / 10
        return "\(hundredths / 100).\(hundredths % 100 < 10 ? "0" : "")\(hundredths % 100)"
    }

    private func check(
        results: [Result<CountPrimes.Answer, any Error>], expected: [Int], executions: [Int],
        figures: ClusterQueueFigures?, killedHolding: Int?, elapsed: Duration
    ) -> Bool {
        var problems: [String] = []
        var perWorker: [Int32: Int] = [:]
        if results.count != blocks { problems.append("\(results.count) results for \(blocks) blocks") }
        for (index, result) in results.enumerated() {
            switch result {
            case .success(let answer):
                perWorker[answer.worker, default: 0] += 1
                if answer.block != index { problems.append("result \(index) is block \(answer.block)'s") }
                if answer.primes != expected[index] {
                    problems.append(
                        "block \(index): \(answer.primes) primes, the sieve says \(expected[index])")
                }
            case .failure(let error):
                problems.append("block \(index) failed: \(error)")
            }
        }
        if killedHolding == nil { problems.append("the worker was not killed") }
        let stored = figures?.counts ?? [:]
        if stored[.succeeded] != blocks
            || (stored[.failed] ?? 0) + (stored[.queued] ?? 0) + (stored[.running] ?? 0) != 0
        {
            problems.append("the queue holds \(stored) instead of \(blocks) succeeded tasks")
        }
        let neverRan = executions.indices.filter { executions[$0] == 0 }
        if !neverRan.isEmpty { problems.append("blocks \(neverRan) never ran (no log line)") }
        let again = executions.indices.filter { executions[$0] > 1 }
        let total = results.reduce(0) { sum, result in sum + ((try? result.get().primes) ?? 0) }

        say("producer: all \(results.count) results in after \(Self.seconds(elapsed)) s")
        say("  primes below \(blocks * blockSize): \(total) (the local sieve: \(expected.reduce(0, +)))")
        say(
            "  results by worker: "
                + perWorker.sorted { $0.key < $1.key }.map {
                    "\($0.key): \($0.value)\($0.key == victim ? " (killed)" : "")"
                }
                .joined(separator: ", "))
        say(
            "  executions: \(executions.reduce(0, +)) for \(blocks) blocks — at least once; "
                + (again.isEmpty
                    ? "none ran twice (the killed worker held no running block)"
                    : "ran twice after the kill: blocks \(again.map(String.init).joined(separator: ", "))"))
        say(
            "  on the queue: \(stored[.succeeded] ?? 0) succeeded, \(stored[.failed] ?? 0) failed — one result per task"
        )
        if problems.isEmpty {
            say(
                "OK: every block's result arrived exactly once and matches the sieve, after a worker was SIGKILLed"
            )
            return true
        }
        say("FAILED:\n" + problems.map { "  - \($0)" }.joined(separator: "\n"))
        return false
    }
}
